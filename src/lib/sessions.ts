// Sessions, refresh tokens and revocation, all in the shared store so they hold on every worker.
//
//   sess:{sid}   the session (refresh-token family): {uid, gen, expiresAt}; TTL = absolute cap
//   rt:{hmac}    one refresh token: {state: active|used, sid, uid}; only an HMAC of the token is stored
//   bl:{jti}     a logged-out access token, kept for its remaining lifetime
//   ugen:{uid}   the user's session generation, bumped by logout-all: sessions of older generations
//                are revoked. A counter, not a time, so that clocks of different hosts never matter.
//   usess:{uid}  set of the user's session ids, for listing them; entries of ended sessions are
//                dropped when the list is read
//   slast:{sid}  when the session last logged in or refreshed (ms); apart from sess:{sid} so that
//                a refresh never rewrites, and so never resurrects, a session being revoked
//
// An access token is valid while its session exists, its jti is not blacklisted and its session's
// generation is current: one MGET per authenticated request.
import { createHmac, randomBytes, randomUUID, type KeyObject, createSecretKey } from 'node:crypto';
import type { Config } from '../config';
import type { AccessClaims } from './access-tokens';
import { AppError, serviceUnavailable } from './errors';
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

/** The revocations that wait for a replica (see KeyValueStore.durably), as metric labels. */
export const REVOCATIONS = ['logout', 'all_sessions', 'session', 'refresh_reuse'] as const;
export type Revocation = (typeof REVOCATIONS)[number];

export interface SessionsOptions {
  /** A revocation no replica acknowledged in time: it stands on the primary, a failover may lose it. */
  onUnreplicated?: (revocation: Revocation) => void;
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

  /**
   * A revocation answered as done must survive a failover: its writes wait for a replica. When
   * none acknowledges in time the revocation still holds (on the primary), and it is reported.
   */
  private async durably(revocation: Revocation, write: (kv: KeyValueStore) => Promise<unknown>): Promise<void> {
    if (!(await this.kv.durably(write))) this.options.onUnreplicated?.(revocation);
  }

  private refreshKey(token: string, key = this.hmacKeys[0]!): string {
    return `rt:${createHmac('sha256', key).update(token).digest('base64url')}`;
  }

  /**
   * Claims a refresh token's record (see rotate). A token issued before the refresh secret was
   * rotated is stored under the earlier secret's HMAC: try each secret, current first.
   */
  private async claim(token: string, used: RefreshRecord, ttlMs: number): Promise<RefreshRecord | undefined> {
    for (const key of this.hmacKeys) {
      const previous = await this.kv.swapIfExists(this.refreshKey(token, key), JSON.stringify(used), ttlMs);
      if (previous !== null) return parse<RefreshRecord>(previous);
    }
    return undefined;
  }

  private async issueRefresh(sid: string, uid: string, sessionExpiresAt: number): Promise<string> {
    // The session id travels in the token so that a reused token names its family even after
    // its own record was overwritten; the random part is what makes it unguessable.
    const token = `${sid}.${randomBytes(32).toString('base64url')}`;
    const ttl = Math.min(this.jwt.refreshTtlMs, sessionExpiresAt - Date.now());
    const record: RefreshRecord = { state: 'active', sid, uid };
    await this.kv.set(this.refreshKey(token), JSON.stringify(record), ttl);
    return token;
  }

  async create(userId: string, userAgent?: string): Promise<IssuedSession> {
    return guard(
      (async () => {
        const sessionId = randomUUID();
        const gen = Number((await this.kv.get(`ugen:${userId}`)) ?? 0);
        const now = Date.now();
        const session: SessionRecord = {
          uid: userId,
          gen,
          expiresAt: now + this.jwt.sessionMaxAgeMs,
          createdAt: now,
          userAgent: userAgent ? [...userAgent].slice(0, USER_AGENT_MAX_LENGTH).join('') : null,
        };
        await this.kv.set(`sess:${sessionId}`, JSON.stringify(session), this.jwt.sessionMaxAgeMs);
        await Promise.all([
          // The index outlives every session in it: each ends within sessionMaxAge from now.
          this.kv.addToSet(`usess:${userId}`, [sessionId], this.jwt.sessionMaxAgeMs),
          this.kv.set(`slast:${sessionId}`, String(now), this.jwt.sessionMaxAgeMs),
        ]);
        const refreshToken = await this.issueRefresh(sessionId, userId, session.expiresAt);
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
        // Read the session before claiming the token: a concurrent reuse revokes the family only
        // after our claim, so the winner is never refused by the revocation its race caused.
        const session = parse<SessionRecord>(await this.kv.get(`sess:${sid}`));
        if (!session || session.expiresAt <= Date.now()) throw new AppError('invalid_grant', { security: { reason: 'session ended', sessionId: sid } });
        if (!isCurrent(session, await this.kv.get(`ugen:${session.uid}`))) {
          throw new AppError('invalid_grant', { security: { reason: 'session ended by logout-all', sessionId: sid, userId: session.uid } });
        }

        const used: RefreshRecord = { state: 'used', sid, uid: session.uid };
        const previous = await this.claim(token, used, session.expiresAt - Date.now());
        if (!previous || previous.sid !== sid)
          throw new AppError('invalid_grant', { security: { reason: 'unknown or expired refresh token', sessionId: sid, userId: session.uid } });
        if (previous.state === 'used') {
          await this.durably('refresh_reuse', (kv) => kv.del([`sess:${sid}`]));
          throw new RefreshReuseError(sid, session.uid);
        }
        const [refreshToken] = await Promise.all([
          this.issueRefresh(sid, session.uid, session.expiresAt),
          this.kv.set(`slast:${sid}`, String(Date.now()), session.expiresAt - Date.now()),
        ]);
        return { sessionId: sid, refreshToken, userId: session.uid };
      })(),
    );
  }

  /** Logout: this access token and its whole session. */
  async revoke(claims: AccessClaims): Promise<void> {
    const remainingMs = claims.exp * 1000 - Date.now() + 10_000;
    await guard(this.durably('logout', (kv) => Promise.all([kv.set(`bl:${claims.jti}`, '1', Math.max(remainingMs, 1000)), kv.del([`sess:${claims.sid}`])])));
  }

  /** Logout-all: every session of the user existing now; sessions created afterwards work. */
  async revokeAll(userId: string): Promise<void> {
    // Outlives every session it revokes: each of those ends within sessionMaxAge from now.
    await guard(this.durably('all_sessions', (kv) => kv.bump(`ugen:${userId}`, this.jwt.sessionMaxAgeMs)));
  }

  /** The user's live sessions, newest first; `current` marks the caller's. Ended ones leave the index. */
  async list(userId: string, currentSessionId: string): Promise<SessionInfo[]> {
    return guard(
      (async () => {
        const ids = await this.kv.setMembers(`usess:${userId}`);
        if (ids.length === 0) return [];
        const values = await this.kv.mget([`ugen:${userId}`, ...ids.flatMap((id) => [`sess:${id}`, `slast:${id}`])]);
        const gen = values[0];
        const now = Date.now();
        const live: SessionInfo[] = [];
        const ended: string[] = [];
        ids.forEach((id, i) => {
          const session = parse<SessionRecord>(values[1 + 2 * i]);
          if (!session || session.uid !== userId || !isCurrent(session, gen) || session.expiresAt <= now) {
            ended.push(id);
            return;
          }
          const createdAt = session.createdAt ?? session.expiresAt - this.jwt.sessionMaxAgeMs;
          const lastUsedAt = Number(values[2 + 2 * i] ?? createdAt);
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
        if (ended.length > 0) await this.kv.removeFromSet(`usess:${userId}`, ended).catch(() => undefined);
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
        const [raw, gen] = await this.kv.mget([`sess:${sessionId}`, `ugen:${userId}`]);
        const session = parse<SessionRecord>(raw);
        if (!session || session.uid !== userId || !isCurrent(session, gen)) return false;
        await this.durably('session', (kv) =>
          Promise.all([kv.del([`sess:${sessionId}`, `slast:${sessionId}`]), kv.removeFromSet(`usess:${userId}`, [sessionId])]),
        );
        return true;
      })(),
    );
  }

  /** Account deletion: every session ends (as logout-all), and the user's session records go. */
  async endAll(userId: string): Promise<void> {
    await this.revokeAll(userId);
    await guard(
      (async () => {
        const ids = await this.kv.setMembers(`usess:${userId}`);
        await this.kv.del([`usess:${userId}`, ...ids.flatMap((id) => [`sess:${id}`, `slast:${id}`])]);
      })(),
    );
  }

  /** True when the access token is still honoured. One round trip. */
  async isActive(claims: AccessClaims): Promise<boolean> {
    const [blacklisted, rawSession, gen] = await guard(this.kv.mget([`bl:${claims.jti}`, `sess:${claims.sid}`, `ugen:${claims.sub}`]));
    if (blacklisted !== null) return false;
    const session = parse<SessionRecord>(rawSession);
    return session !== undefined && session.uid === claims.sub && isCurrent(session, gen);
  }
}
