// Where session state and cached responses live in the key-value store, and why the keys look as
// they do.
//
// A Redis Cluster refuses a command over keys in different hash slots, and only the part of a key
// between the first `{` and the next `}` (its hash tag) decides the slot. Keys read or written by one
// command therefore share a tag, one per thing they belong to, so that the load spreads over the
// cluster instead of piling onto one slot:
//
//   {s:<session id>}  sess (the session), slast (last use), rt:<hmac> (its refresh tokens) and
//                     bl:<jti> (its logged-out access tokens): a logout writes them together
//   {u:<user id>}     ugen (the user's session generation) and usess (the user's session index)
//   {c:<namespace>}   ver (a cache namespace's version) and resp (the entries depending on it): a
//                     cached read fetches both in one MGET
//
// The session check reads bl and sess (the session's slot) and ugen (the user's): one MGET on one
// server, one command per slot on a Cluster (the store groups keys by slot; see RedisStore.mget).
// Rate-limit counters are single keys and kept their names.
//
// Releases before this layout used the same names without tags. Upgrading a running deployment must
// log nobody out, and during a rolling upgrade processes of both releases share the store, so where
// the store holds sessions of the old layout, this release reads both layouts for a while and writes
// the session state to both (see LayoutTransition).
// The old layout never existed on a Cluster (those releases refused one), so a Cluster uses the new
// layout alone.
import type { KeyValueStore } from './store/types';

/** The names of one session's and one user's keys in one layout. */
export interface SessionKeys {
  session(sid: string): string;
  lastUsed(sid: string): string;
  refresh(sid: string, hmac: string): string;
  blocked(sid: string, jti: string): string;
  generation(uid: string): string;
  index(uid: string): string;
}

export const SESSION_KEYS: SessionKeys = {
  session: (sid) => `sess:{s:${sid}}`,
  lastUsed: (sid) => `slast:{s:${sid}}`,
  refresh: (sid, hmac) => `rt:{s:${sid}}:${hmac}`,
  blocked: (sid, jti) => `bl:{s:${sid}}:${jti}`,
  generation: (uid) => `ugen:{u:${uid}}`,
  index: (uid) => `usess:{u:${uid}}`,
};

/** The untagged names of releases before this layout. */
export const LEGACY_SESSION_KEYS: SessionKeys = {
  session: (sid) => `sess:${sid}`,
  lastUsed: (sid) => `slast:${sid}`,
  refresh: (_sid, hmac) => `rt:${hmac}`,
  blocked: (_sid, jti) => `bl:${jti}`,
  generation: (uid) => `ugen:${uid}`,
  index: (uid) => `usess:${uid}`,
};

/** The names of one cache namespace's keys in one layout. */
export interface CacheKeys {
  version(namespace: string): string;
  entry(namespace: string, rest: string): string;
}

export const CACHE_KEYS: CacheKeys = {
  version: (ns) => `ver:{c:${ns}}`,
  entry: (ns, rest) => `resp:{c:${ns}}:${rest}`,
};

/** Old versions only: entries of the old layout are never read (a miss costs one query). */
export const LEGACY_CACHE_KEYS: Pick<CacheKeys, 'version'> = {
  version: (ns) => `ver:${ns}`,
};

/** Where the store remembers when the first process of this layout started (or that none was needed). */
const MARKER_KEY = 'keylayout:tagged';
/** The marker's value when the store held nothing of the old layout at the first start. */
const NOT_NEEDED = 'not-needed';
const MARKER_TTL_MS = 365 * 86_400_000;
/** Time for the last process of an older release to stop, beyond the longest session. */
const ROLLOUT_MARGIN_MS = 86_400_000;
/** How often a process looks again whether the transition has ended (or, after a failure, started). */
const RECHECK_MS = 10 * 60_000;

export interface TransitionOptions {
  /**
   * Whether the store holds session keys of the old layout: true, false, or undefined when it
   * cannot tell (then assumed true). Asked once per deployment, by its first process.
   */
  findOldLayout?: () => Promise<boolean | undefined>;
  now?: () => number;
}

/**
 * Whether the old layout must still be read (and the session state written to it too).
 *
 * The first process of this layout looks for sessions of the old layout. Finding none (a new
 * deployment), it records that no transition is needed. Otherwise it records the time (SET NX, so
 * every later process and restart sees the same), and until the longest session plus a day has
 * passed since, sessions created by an older release may still be alive, and processes of an older
 * release may still be running during the rollout: both layouts are read and written. After that,
 * only the new one. When the store cannot be reached the transition is assumed on (reading more keys
 * never logs anyone out) and looked at again later.
 */
export class LayoutTransition {
  private until = Infinity;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  private constructor(
    private readonly store: KeyValueStore | undefined,
    private readonly spanMs: number,
    private readonly options: TransitionOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** For a store that never held the old layout (a Cluster, the in-process store). */
  static none(): LayoutTransition {
    const transition = new LayoutTransition(undefined, 0, {});
    transition.until = -Infinity;
    return transition;
  }

  /** Reads (or records) when the transition started, and keeps looking every ten minutes. */
  static async start(store: KeyValueStore, sessionMaxAgeMs: number, options: TransitionOptions = {}): Promise<LayoutTransition> {
    const transition = new LayoutTransition(store, sessionMaxAgeMs + ROLLOUT_MARGIN_MS, options);
    await transition.check();
    if (transition.active) transition.timer = setInterval(() => void transition.check(), RECHECK_MS).unref();
    return transition;
  }

  /** True while both layouts are in use. */
  get active(): boolean {
    return this.now() < this.until;
  }

  async check(): Promise<void> {
    if (!this.store) return;
    try {
      let recorded = await this.store.get(MARKER_KEY);
      if (recorded === null) {
        const found = this.options.findOldLayout ? await this.options.findOldLayout().catch(() => undefined) : true;
        // Outlives the transition by far: a process started after it ended must not begin another.
        await this.store.setIfAbsent(MARKER_KEY, found === false ? NOT_NEEDED : String(this.now()), Math.max(this.spanMs * 2, MARKER_TTL_MS));
        recorded = await this.store.get(MARKER_KEY);
      }
      const started = Number(recorded);
      this.until = recorded === NOT_NEEDED ? -Infinity : (Number.isFinite(started) && started > 0 ? started : this.now()) + this.spanMs;
      if (!this.active) this.stop();
    } catch {
      // Unknown: keep whatever was known (on at first).
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
