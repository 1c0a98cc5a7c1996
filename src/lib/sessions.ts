// Sessions, refresh tokens and revocation, all in the shared store so they hold on every worker.
// Key names (with the hash tags a Redis Cluster needs) are in key-layout.ts:
//
//   session      the session (refresh-token family): {uid, gen, expiresAt}; TTL = absolute cap
//   refresh      one refresh token: {state: active|used, sid, uid}; only an HMAC of the token is stored
//   blocked      a logged-out access token, kept for its remaining lifetime
//   generation   the user's session generation, bumped by logout-all: sessions of older generations
//                are revoked. A counter, not a time, so that clocks of different hosts never matter.
//   index        set of the user's session ids, for listing them; entries of ended sessions are
//                dropped when the list is read
//   lastUsed     when the session last logged in or refreshed (ms); apart from the session so that
//                a refresh never rewrites, and so never resurrects, a session being revoked
//
// An access token is valid while its session exists, its jti is not blocked and its session's
// generation is current: one MGET per authenticated request.
//
// While the layout of earlier releases is still in use (see LayoutTransition), every read looks in
// both layouts and every write goes to both: a session is found in the first layout holding it and
// compared with that layout's generation, so each layout stays consistent on its own and processes
// of an earlier release, which know only the old one, keep working during a rolling upgrade.
import { createHmac, randomBytes, randomUUID, type KeyObject, createSecretKey } from 'node:crypto';
import type { Config } from '../config';
import type { AccessClaims } from './access-tokens';
import { AppError, serviceUnavailable } from './errors';
import { LEGACY_SESSION_KEYS, SESSION_KEYS, type LayoutTransition, type SessionKeys } from './key-layout';
import type { KeyValueStore } from './store/types';

interface SessionRecord {
  uid: string;
  gen: number;
  expiresAt: number;
  /** Absent on sessions created before these fields existed. */
  createdAt?: number;
  userAgent?: string | null;
}

/** A live session as its user sees it. */
export interface SessionInfo {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  userAgent: string | null;
  current: boolean;
}

/** Long enough to recognise a browser or an app, short enough that a header cannot bloat the store. */
const USER_AGENT_MAX_LENGTH = 256;

interface RefreshRecord {
  state: 'active' | 'used';
  sid: string;
  uid?: string;
}

const REFRESH_TOKEN = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{43})$/;

export class RefreshReuseError extends AppError {
  constructor(
    readonly sessionId: string,
    readonly userId: string | undefined,
  ) {
    super('invalid_grant', { cause: new Error('refresh token reuse') });
  }
}

/** Store failures become 503 with Retry-After: token state fails closed, and fast. */
async function guard<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (err) {
    throw err instanceof AppError ? err : serviceUnavailable(err);
  }
}

function parse<T>(value: string | null | undefined): T | undefined {
  if (value === null || value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}

/** A session survives logout-all only when created after it (its generation is current). */
function isCurrent(session: SessionRecord, gen: string | null | undefined): boolean {
  return session.gen >= Number(gen ?? 0);
}

/** The first of the layouts' values that parses, and which layout it came from. */
function first<T>(values: readonly (string | null | undefined)[]): { value: T; at: number } | undefined {
  for (let at = 0; at < values.length; at++) {
    const value = parse<T>(values[at]);
    if (value !== undefined) return { value, at };
  }
  return undefined;
}

const CURRENT_LAYOUT: readonly SessionKeys[] = [SESSION_KEYS];
const BOTH_LAYOUTS: readonly SessionKeys[] = [SESSION_KEYS, LEGACY_SESSION_KEYS];

/** The revocations that wait for a replica (see KeyValueStore.durably), as metric labels. */
export const REVOCATIONS = ['logout', 'all_sessions', 'session', 'refresh_reuse'] as const;
export type Revocation = (typeof REVOCATIONS)[number];

export interface SessionsOptions {
  /** A revocation no replica acknowledged in time: it stands on the primary, a failover may lose it. */
  onUnreplicated?: (revocation: Revocation) => void;
  /** While it is active, the layout of earlier releases is read and written too (see key-layout.ts). */
  transition?: LayoutTransition;
}

export interface IssuedSession {
  sessionId: string;
  refreshToken: string;
}

export class Sessions {
  /** The current refresh secret first, then earlier ones still honoured during a rotation. */
  private readonly hmacKeys: readonly KeyObject[];

  constructor(
    private readonly kv: KeyValueStore,
    private readonly jwt: Config['jwt'],
    private readonly options: SessionsOptions = {},
  ) {
    this.hmacKeys = [jwt.refreshSecret, ...jwt.previousRefreshSecrets].map((secret) => createSecretKey(Buffer.from(secret, 'utf8')));
  }

  /** The key layouts in use, the current one first. */
  private layouts(): readonly SessionKeys[] {
    return this.options.transition?.active ? BOTH_LAYOUTS : CURRENT_LAYOUT;
  }

  /**
   * A revocation answered as done must survive a failover: its writes wait for a replica. When
   * none acknowledges in time the revocation still holds (on the primary), and it is reported.
   */
  private async durably(revocation: Revocation, write: (kv: KeyValueStore) => Promise<unknown>): Promise<void> {
    if (!(await this.kv.durably(write))) this.options.onUnreplicated?.(revocation);
  }

  private hmac(token: string, key = this.hmacKeys[0]!): string {
    return createHmac('sha256', key).update(token).digest('base64url');
  }

  /**
   * Claims a refresh token's record (see rotate). A token issued before the refresh secret was
   * rotated is stored under the earlier secret's HMAC: try each secret, current first. A token
   * written to both layouts is claimed in both, so that neither release can use it again.
   */
  private async claim(token: string, sid: string, used: RefreshRecord, ttlMs: number): Promise<RefreshRecord | undefined> {
    const layouts = this.layouts();
    for (const key of this.hmacKeys) {
      const hmac = this.hmac(token, key);
      const previous = await Promise.all(layouts.map((keys) => this.kv.swapIfExists(keys.refresh(sid, hmac), JSON.stringify(used), ttlMs)));
      const records = previous.map((value) => parse<RefreshRecord>(value)).filter((record) => record !== undefined);
      if (records.length > 0) return records.find((record) => record.state === 'used') ?? records[0];
    }
    return undefined;
  }

  private async issueRefresh(sid: string, uid: string, sessionExpiresAt: number): Promise<string> {
    // The session id travels in the token so that a reused token names its family even after
    // its own record was overwritten; the random part is what makes it unguessable.
    const token = `${sid}.${randomBytes(32).toString('base64url')}`;
    const ttl = Math.min(this.jwt.refreshTtlMs, sessionExpiresAt - Date.now());
    const record = JSON.stringify({ state: 'active', sid, uid } satisfies RefreshRecord);
    const hmac = this.hmac(token);
    await Promise.all(this.layouts().map((keys) => this.kv.set(keys.refresh(sid, hmac), record, ttl)));
    return token;
  }

  async create(userId: string, userAgent?: string): Promise<IssuedSession> {
    return guard(
      (async () => {
        const layouts = this.layouts();
        const sessionId = randomUUID();
        const gens = await this.kv.mget(layouts.map((keys) => keys.generation(userId)));
        const now = Date.now();
        const expiresAt = now + this.jwt.sessionMaxAgeMs;
        const agent = userAgent ? [...userAgent].slice(0, USER_AGENT_MAX_LENGTH).join('') : null;
        await Promise.all(
          layouts.map((keys, i) => {
            const session: SessionRecord = { uid: userId, gen: Number(gens[i] ?? 0), expiresAt, createdAt: now, userAgent: agent };
            return this.kv.set(keys.session(sessionId), JSON.stringify(session), this.jwt.sessionMaxAgeMs);
          }),
        );
        await Promise.all(
          layouts.flatMap((keys) => [
            // The index outlives every session in it: each ends within sessionMaxAge from now.
            this.kv.addToSet(keys.index(userId), [sessionId], this.jwt.sessionMaxAgeMs),
            this.kv.set(keys.lastUsed(sessionId), String(now), this.jwt.sessionMaxAgeMs),
          ]),
        );
        const refreshToken = await this.issueRefresh(sessionId, userId, expiresAt);
        return { sessionId, refreshToken };
      })(),
    );
  }

  /**
   * Exchanges a refresh token for a new one. Unknown, expired or revoked: invalid_grant.
   * Already used: the whole family is revoked (RFC 9700 4.14.2) and RefreshReuseError thrown.
   * Of concurrent calls with one token exactly one succeeds; the others are reuse.
   */
  async rotate(token: string): Promise<IssuedSession & { userId: string }> {
    const match = REFRESH_TOKEN.exec(token);
    if (!match) throw new AppError('invalid_grant', { security: { reason: 'not a refresh token' } });
    const sid = match[1]!;
    return guard(
      (async () => {
        const layouts = this.layouts();
        // Read the session before claiming the token: a concurrent reuse revokes the family only
        // after our claim, so the winner is never refused by the revocation its race caused.
        const found = first<SessionRecord>(await this.kv.mget(layouts.map((keys) => keys.session(sid))));
        if (!found || found.value.expiresAt <= Date.now()) throw new AppError('invalid_grant', { security: { reason: 'session ended', sessionId: sid } });
        const session = found.value;
        if (!isCurrent(session, await this.kv.get(layouts[found.at]!.generation(session.uid)))) {
          throw new AppError('invalid_grant', { security: { reason: 'session ended by logout-all', sessionId: sid, userId: session.uid } });
        }

        const used: RefreshRecord = { state: 'used', sid, uid: session.uid };
        const previous = await this.claim(token, sid, used, session.expiresAt - Date.now());
        if (!previous || previous.sid !== sid)
          throw new AppError('invalid_grant', { security: { reason: 'unknown or expired refresh token', sessionId: sid, userId: session.uid } });
        if (previous.state === 'used') {
          await this.durably('refresh_reuse', (kv) => kv.del(layouts.map((keys) => keys.session(sid))));
          throw new RefreshReuseError(sid, session.uid);
        }
        const [refreshToken] = await Promise.all([
          this.issueRefresh(sid, session.uid, session.expiresAt),
          ...layouts.map((keys) => this.kv.set(keys.lastUsed(sid), String(Date.now()), session.expiresAt - Date.now())),
        ]);
        return { sessionId: sid, refreshToken, userId: session.uid };
      })(),
    );
  }

  /** Logout: this access token and its whole session. */
  async revoke(claims: AccessClaims): Promise<void> {
    const remainingMs = claims.exp * 1000 - Date.now() + 10_000;
    const layouts = this.layouts();
    await guard(
      this.durably('logout', (kv) =>
        Promise.all([
          ...layouts.map((keys) => kv.set(keys.blocked(claims.sid, claims.jti), '1', Math.max(remainingMs, 1000))),
          kv.del(layouts.map((keys) => keys.session(claims.sid))),
        ]),
      ),
    );
  }

  /** Logout-all: every session of the user existing now; sessions created afterwards work. */
  async revokeAll(userId: string): Promise<void> {
    const layouts = this.layouts();
    // Outlives every session it revokes: each of those ends within sessionMaxAge from now.
    await guard(this.durably('all_sessions', (kv) => Promise.all(layouts.map((keys) => kv.bump(keys.generation(userId), this.jwt.sessionMaxAgeMs)))));
  }

  /** The user's live sessions, newest first; `current` marks the caller's. Ended ones leave the index. */
  async list(userId: string, currentSessionId: string): Promise<SessionInfo[]> {
    return guard(
      (async () => {
        const layouts = this.layouts();
        const n = layouts.length;
        const members = await Promise.all(layouts.map((keys) => this.kv.setMembers(keys.index(userId))));
        const ids = [...new Set(members.flat())];
        if (ids.length === 0) return [];
        // The layouts' generations, then for each session and each layout: the session, its last use.
        const values = await this.kv.mget([
          ...layouts.map((keys) => keys.generation(userId)),
          ...ids.flatMap((id) => layouts.flatMap((keys) => [keys.session(id), keys.lastUsed(id)])),
        ]);
        const now = Date.now();
        const live: SessionInfo[] = [];
        const ended: string[] = [];
        ids.forEach((id, i) => {
          const at = n + 2 * n * i;
          const found = first<SessionRecord>(layouts.map((_, j) => values[at + 2 * j]));
          if (!found || found.value.uid !== userId || !isCurrent(found.value, values[found.at]) || found.value.expiresAt <= now) {
            ended.push(id);
            return;
          }
          const session = found.value;
          const createdAt = session.createdAt ?? session.expiresAt - this.jwt.sessionMaxAgeMs;
          const lastUsedAt = Number(values[at + 2 * found.at + 1] ?? createdAt);
          live.push({
            id,
            createdAt: new Date(createdAt).toISOString(),
            lastUsedAt: new Date(Number.isFinite(lastUsedAt) ? lastUsedAt : createdAt).toISOString(),
            expiresAt: new Date(session.expiresAt).toISOString(),
            userAgent: session.userAgent ?? null,
            current: id === currentSessionId,
          });
        });
        // Best effort: a failure here leaves entries the next read filters out again.
        if (ended.length > 0) await Promise.all(layouts.map((keys) => this.kv.removeFromSet(keys.index(userId), ended))).catch(() => undefined);
        return live.sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
      })(),
    );
  }

  /**
   * Ends one of the user's sessions: its refresh token and access tokens stop working at once.
   * False when no such live session belongs to the user (someone else's looks the same as none).
   */
  async revokeSession(userId: string, sessionId: string): Promise<boolean> {
    return guard(
      (async () => {
        const layouts = this.layouts();
        const values = await this.kv.mget([...layouts.map((keys) => keys.session(sessionId)), ...layouts.map((keys) => keys.generation(userId))]);
        const found = first<SessionRecord>(values.slice(0, layouts.length));
        if (!found || found.value.uid !== userId || !isCurrent(found.value, values[layouts.length + found.at])) return false;
        await this.durably('session', (kv) =>
          Promise.all([
            kv.del(layouts.flatMap((keys) => [keys.session(sessionId), keys.lastUsed(sessionId)])),
            ...layouts.map((keys) => kv.removeFromSet(keys.index(userId), [sessionId])),
          ]),
        );
        return true;
      })(),
    );
  }

  /** Account deletion: every session ends (as logout-all), and the user's session records go. */
  async endAll(userId: string): Promise<void> {
    await this.revokeAll(userId);
    await guard(
      Promise.all(
        this.layouts().map(async (keys) => {
          const ids = await this.kv.setMembers(keys.index(userId));
          await this.kv.del([keys.index(userId), ...ids.flatMap((id) => [keys.session(id), keys.lastUsed(id)])]);
        }),
      ),
    );
  }

  /** True when the access token is still honoured. One round trip. */
  async isActive(claims: AccessClaims): Promise<boolean> {
    const layouts = this.layouts();
    const keys: string[] = [];
    for (const layout of layouts) keys.push(layout.blocked(claims.sid, claims.jti), layout.session(claims.sid), layout.generation(claims.sub));
    const values = await guard(this.kv.mget(keys));
    for (let j = 0; j < layouts.length; j++) if (values[3 * j] !== null) return false;
    for (let j = 0; j < layouts.length; j++) {
      const session = parse<SessionRecord>(values[3 * j + 1]);
      if (session !== undefined) return session.uid === claims.sub && isCurrent(session, values[3 * j + 2]);
    }
    return false;
  }
}
