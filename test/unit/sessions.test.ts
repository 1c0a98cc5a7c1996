// Sessions, refresh tokens and revocation over the in-process store, on their own: what a session
// writes and for how long, rotation and reuse detection, logout, logout-all, the session list, and
// failing closed when the store cannot answer. The modules are loaded inside each test
// (test/helpers/fresh.ts): the refresh-token pattern is a top-level declaration.
import { createHmac, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Config } from '../../src/config';
import type { AccessClaims } from '../../src/lib/access-tokens';
import { LayoutTransition, SESSION_KEYS as K } from '../../src/lib/key-layout';
import type { KeyValueStore } from '../../src/lib/store/types';
import { fresh } from '../helpers/fresh';
import { watched } from '../helpers/watched-store';

const load = () =>
  fresh(async () => ({
    sessions: await import('../../src/lib/sessions.js'),
    errors: await import('../../src/lib/errors.js'),
    store: await import('../../src/lib/store/memory-store.js'),
  }));

const REFRESH_SECRET = 'r'.repeat(40);
const MAX_AGE = 30 * 86_400_000;
const JWT_CONFIG: Config['jwt'] = {
  accessSecret: 'a'.repeat(40),
  previousAccessSecrets: [],
  refreshSecret: REFRESH_SECRET,
  previousRefreshSecrets: [],
  generatedSecrets: false,
  issuer: 'rampart',
  audience: 'rampart-api',
  accessTtlMs: 15 * 60_000,
  refreshTtlMs: 7 * 86_400_000,
  sessionMaxAgeMs: MAX_AGE,
};
const T0 = Date.UTC(2026, 0, 1);

interface Write {
  key: string;
  value?: string;
  ttlMs: number;
}

/** Sessions over a fresh in-process store, with every write and its expiry recorded. */
async function setup(jwt: Partial<Config['jwt']> = {}, options: { transition?: boolean } = {}) {
  const m = await load();
  const kv = new m.store.MemoryStore('test:');
  const transition = options.transition ? await LayoutTransition.start(kv, MAX_AGE) : undefined;
  if (transition) transitions.push(transition);
  const writes: Write[] = [];
  const calls: string[] = [];
  const recorded = watched(kv, (name, args) => {
    calls.push(name);
    if (name === 'set' || name === 'swapIfExists') writes.push({ key: args[0] as string, value: args[1] as string, ttlMs: args[2] as number });
    if (name === 'bump' || name === 'addToSet') writes.push({ key: args[0] as string, ttlMs: args[name === 'bump' ? 1 : 2] as number });
  });
  // Revocations go through durably(): their writes are recorded too, and whether a replica
  // acknowledged them is the test's to choose.
  const replicas = { acknowledge: true };
  const store = new Proxy(recorded, {
    get: (target, name, receiver) =>
      name === 'durably'
        ? async (write: (s: KeyValueStore) => Promise<unknown>) => {
            calls.push('durably');
            await write(recorded);
            return replicas.acknowledge;
          }
        : (Reflect.get(target, name, receiver) as unknown),
  });
  const unreplicated: string[] = [];
  const config = { ...JWT_CONFIG, ...jwt };
  const sessions = new m.sessions.Sessions(store, config, { onUnreplicated: (revocation) => unreplicated.push(revocation), transition });
  return { m, kv, writes, calls, config, sessions, replicas, unreplicated };
}

const json = async (kv: KeyValueStore, key: string) => JSON.parse((await kv.get(key)) ?? 'null') as Record<string, unknown> | null;
const hmac = (token: string, secret = REFRESH_SECRET) => K.refresh(token.split('.')[0]!, createHmac('sha256', secret).update(token).digest('base64url'));
const claimsOf = (userId: string, sessionId: string, extra: Partial<AccessClaims> = {}): AccessClaims => ({
  sub: userId,
  sid: sessionId,
  jti: `jti-${sessionId}`,
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 900,
  ...extra,
});

/** The refusal `promise` ends in: its code and the reason the security log gets. */
async function refusal(promise: Promise<unknown>): Promise<{ code: string; reason: string | undefined; userId?: string | undefined }> {
  const err = (await promise.then(
    () => expect.fail('expected a refusal'),
    (e: unknown) => e,
  )) as { code: string; security?: { reason?: string; userId?: string } };
  return { code: err.code, reason: err.security?.reason, ...(err.security?.userId !== undefined && { userId: err.security.userId }) };
}

const transitions: LayoutTransition[] = [];

afterEach(() => {
  vi.useRealTimers();
  for (const transition of transitions.splice(0)) transition.stop();
});

describe('create', () => {
  it('writes the session, its index entry, its last use and one refresh token, each for as long as it may live', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, writes, sessions } = await setup();
    const { sessionId, refreshToken } = await sessions.create('user-1', 'Mozilla/5.0');
    expect(sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(refreshToken).toMatch(new RegExp(`^${sessionId}\\.[A-Za-z0-9_-]{43}$`));
    expect(await json(kv, K.session(sessionId))).toEqual({ uid: 'user-1', gen: 0, expiresAt: T0 + MAX_AGE, createdAt: T0, userAgent: 'Mozilla/5.0' });
    expect(await kv.setMembers(K.index('user-1'))).toEqual([sessionId]);
    expect(await kv.get(K.lastUsed(sessionId))).toBe(String(T0));
    expect(await json(kv, hmac(refreshToken))).toEqual({ state: 'active', sid: sessionId, uid: 'user-1' });
    expect(writes.map((w) => [w.key.replace(sessionId, 'SID').replace(/^rt:.*/, 'rt:HMAC'), w.ttlMs])).toEqual([
      ['sess:{s:SID}', MAX_AGE],
      ['usess:{u:user-1}', MAX_AGE],
      ['slast:{s:SID}', MAX_AGE],
      ['rt:HMAC', JWT_CONFIG.refreshTtlMs],
    ]);
  });

  it('keeps at most 256 characters of the user agent, and none when there is none', async () => {
    const { kv, sessions } = await setup();
    const long = `${'ü'.repeat(255)}😀tail`;
    const a = await sessions.create('user-1', long);
    expect((await json(kv, K.session(a.sessionId)))?.userAgent).toBe(`${'ü'.repeat(255)}😀`);
    const b = await sessions.create('user-1');
    expect((await json(kv, K.session(b.sessionId)))?.userAgent).toBeNull();
    const c = await sessions.create('user-1', '');
    expect((await json(kv, K.session(c.sessionId)))?.userAgent).toBeNull();
  });

  it('gives a refresh token no longer than the session has left', async () => {
    const { writes, sessions } = await setup({ refreshTtlMs: MAX_AGE * 2 });
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    await sessions.create('user-1');
    expect(writes.find((w) => w.key.startsWith('rt:'))?.ttlMs).toBe(MAX_AGE);
  });

  it('starts in the generation current for the user', async () => {
    const { kv, sessions } = await setup();
    await sessions.revokeAll('user-1');
    await sessions.revokeAll('user-1');
    const { sessionId } = await sessions.create('user-1');
    expect((await json(kv, K.session(sessionId)))?.gen).toBe(2);
    expect(await sessions.isActive(claimsOf('user-1', sessionId))).toBe(true);
  });
});

describe('rotate', () => {
  it('exchanges a refresh token for a new one of the same session, once', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, writes, sessions } = await setup();
    const first = await sessions.create('user-1');
    vi.setSystemTime(T0 + 60_000);
    const second = await sessions.rotate(first.refreshToken);
    expect(second).toEqual({ sessionId: first.sessionId, refreshToken: expect.stringMatching(new RegExp(`^${first.sessionId}\\.`)), userId: 'user-1' });
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(await json(kv, hmac(first.refreshToken))).toEqual({ state: 'used', sid: first.sessionId, uid: 'user-1' });
    expect(await json(kv, hmac(second.refreshToken))).toEqual({ state: 'active', sid: first.sessionId, uid: 'user-1' });
    expect(await kv.get(K.lastUsed(first.sessionId))).toBe(String(T0 + 60_000));
    // The used record and the last use live as long as the session does; the new token as long as its lifetime.
    const rest = MAX_AGE - 60_000;
    expect(writes.slice(4).map((w) => [w.key.startsWith('rt:') ? `rt:${w.value?.includes('used') ? 'used' : 'new'}` : w.key.split(':')[0], w.ttlMs])).toEqual([
      ['rt:used', rest],
      ['rt:new', JWT_CONFIG.refreshTtlMs],
      ['slast', rest],
    ]);
  });

  it('treats a second use as theft: the whole session ends', async () => {
    const { m, kv, sessions } = await setup();
    const first = await sessions.create('user-1');
    const second = await sessions.rotate(first.refreshToken);
    const reuse = await sessions.rotate(first.refreshToken).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(m.sessions.RefreshReuseError);
    expect(reuse).toMatchObject({ code: 'invalid_grant', sessionId: first.sessionId, userId: 'user-1' });
    expect(((reuse as Error).cause as Error).message).toBe('refresh token reuse');
    expect(await kv.get(K.session(first.sessionId))).toBeNull();
    expect(await refusal(sessions.rotate(second.refreshToken))).toEqual({ code: 'invalid_grant', reason: 'session ended' });
  });

  it('lets exactly one of two concurrent uses of a token through', async () => {
    const { sessions } = await setup();
    const { refreshToken } = await sessions.create('user-1');
    const outcomes = await Promise.allSettled([sessions.rotate(refreshToken), sessions.rotate(refreshToken)]);
    expect(outcomes.map((o) => o.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it('refuses what is not a refresh token without reading the store', async () => {
    const { sessions } = await setup();
    const { sessionId, refreshToken } = await sessions.create('user-1');
    const random = refreshToken.slice(sessionId.length + 1);
    for (const token of [
      '',
      'abc',
      `${sessionId}.${random}x`,
      `${sessionId}.${random.slice(1)}`,
      `${sessionId.toUpperCase()}.${random}`,
      `${sessionId}${random}`,
      `${refreshToken}\n`,
      ` ${refreshToken}`,
      `${sessionId}.${random.slice(1)}+`,
    ]) {
      expect(await refusal(sessions.rotate(token)), token).toEqual({ code: 'invalid_grant', reason: 'not a refresh token' });
    }
  });

  it('refuses a token of a session that ended, expired or was ended by logout-all', async () => {
    const { kv, sessions } = await setup();
    const revoked = await sessions.create('user-1');
    await sessions.revoke(claimsOf('user-1', revoked.sessionId));
    expect(await refusal(sessions.rotate(revoked.refreshToken))).toEqual({ code: 'invalid_grant', reason: 'session ended' });

    const expired = await sessions.create('user-2');
    const record = (await json(kv, K.session(expired.sessionId)))!;
    await kv.set(K.session(expired.sessionId), JSON.stringify({ ...record, expiresAt: Date.now() }), 60_000);
    expect(await refusal(sessions.rotate(expired.refreshToken))).toEqual({ code: 'invalid_grant', reason: 'session ended' });
    await kv.set(K.session(expired.sessionId), 'not json', 60_000);
    expect(await refusal(sessions.rotate(expired.refreshToken))).toEqual({ code: 'invalid_grant', reason: 'session ended' });

    const everywhere = await sessions.create('user-3');
    await sessions.revokeAll('user-3');
    expect(await refusal(sessions.rotate(everywhere.refreshToken))).toEqual({ code: 'invalid_grant', reason: 'session ended by logout-all', userId: 'user-3' });
  });

  it('refuses an unknown token of a live session, and one whose record names another session', async () => {
    const { kv, sessions } = await setup();
    const { sessionId } = await sessions.create('user-1');
    const unknown = `${sessionId}.${'A'.repeat(43)}`;
    expect(await refusal(sessions.rotate(unknown))).toEqual({ code: 'invalid_grant', reason: 'unknown or expired refresh token', userId: 'user-1' });
    await kv.set(hmac(unknown), JSON.stringify({ state: 'active', sid: 'another-session', uid: 'user-1' }), 60_000);
    expect(await refusal(sessions.rotate(unknown))).toEqual({ code: 'invalid_grant', reason: 'unknown or expired refresh token', userId: 'user-1' });
    await kv.set(hmac(unknown), 'not json', 60_000);
    expect(await refusal(sessions.rotate(unknown))).toEqual({ code: 'invalid_grant', reason: 'unknown or expired refresh token', userId: 'user-1' });
  });

  it('honours a token issued under a previous refresh secret while it is listed, and issues under the current one', async () => {
    const OLD = 'o'.repeat(40);
    const { m, kv, sessions: before } = await setup({ refreshSecret: OLD });
    const issued = await before.create('user-1');
    const rotated = new m.sessions.Sessions(kv, { ...JWT_CONFIG, previousRefreshSecrets: [OLD] });
    const next = await rotated.rotate(issued.refreshToken);
    expect(await json(kv, hmac(next.refreshToken))).toMatchObject({ state: 'active' });
    expect(await kv.get(hmac(next.refreshToken, OLD))).toBeNull();
    const another = await before.create('user-1');
    const forgotten = new m.sessions.Sessions(kv, JWT_CONFIG);
    expect((await refusal(forgotten.rotate(another.refreshToken))).reason).toBe('unknown or expired refresh token');
  });
});

describe('revocation', () => {
  it('logout blacklists the access token for its remaining lifetime plus 10 s, and ends its session', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, writes, sessions } = await setup();
    const { sessionId } = await sessions.create('user-1');
    const claims = claimsOf('user-1', sessionId, { exp: T0 / 1000 + 300 });
    expect(await sessions.isActive(claims)).toBe(true);
    await sessions.revoke(claims);
    expect(await kv.get(K.blocked(claims.sid, claims.jti))).toBe('1');
    expect(writes.find((w) => w.key === K.blocked(claims.sid, claims.jti))?.ttlMs).toBe(310_000);
    expect(await kv.get(K.session(sessionId))).toBeNull();
    expect(await sessions.isActive(claims)).toBe(false);
  });

  it('keeps the blacklist entry at least a second, even for a token already expired', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { writes, sessions } = await setup();
    await sessions.revoke(claimsOf('user-1', 'session-1', { exp: T0 / 1000 - 60 }));
    expect(writes.find((w) => w.key.startsWith('bl:'))?.ttlMs).toBe(1000);
  });

  it('logout-all ends every existing session of the user, and only theirs; later ones work', async () => {
    const { writes, sessions } = await setup();
    const mine = await sessions.create('user-1');
    const theirs = await sessions.create('user-2');
    await sessions.revokeAll('user-1');
    expect(writes.at(-1)).toEqual({ key: K.generation('user-1'), ttlMs: MAX_AGE });
    expect(await sessions.isActive(claimsOf('user-1', mine.sessionId))).toBe(false);
    expect(await sessions.isActive(claimsOf('user-2', theirs.sessionId))).toBe(true);
    const later = await sessions.create('user-1');
    expect(await sessions.isActive(claimsOf('user-1', later.sessionId))).toBe(true);
  });

  it('honours a token only with its own live session, not blacklisted', async () => {
    const { kv, sessions } = await setup();
    const { sessionId } = await sessions.create('user-1');
    expect(await sessions.isActive(claimsOf('user-1', sessionId))).toBe(true);
    expect(await sessions.isActive(claimsOf('user-2', sessionId))).toBe(false); // someone else's session
    expect(await sessions.isActive(claimsOf('user-1', 'no-such-session'))).toBe(false);
    await kv.set(K.blocked(sessionId, 'jti-other'), '1', 60_000);
    expect(await sessions.isActive(claimsOf('user-1', sessionId, { jti: 'jti-other' }))).toBe(false);
    await kv.set(K.session(sessionId), 'not json', 60_000);
    expect(await sessions.isActive(claimsOf('user-1', sessionId))).toBe(false);
  });

  it('ends one session of the user on request, and no one else’s', async () => {
    const { kv, sessions } = await setup();
    const a = await sessions.create('user-1');
    const b = await sessions.create('user-1');
    const other = await sessions.create('user-2');
    expect(await sessions.revokeSession('user-1', other.sessionId)).toBe(false);
    expect(await sessions.revokeSession('user-1', 'no-such-session')).toBe(false);
    expect(await sessions.revokeSession('user-1', a.sessionId)).toBe(true);
    expect(await kv.get(K.session(a.sessionId))).toBeNull();
    expect(await kv.get(K.lastUsed(a.sessionId))).toBeNull();
    expect(await kv.setMembers(K.index('user-1'))).toEqual([b.sessionId]);
    expect(await sessions.isActive(claimsOf('user-2', other.sessionId))).toBe(true);
    await sessions.revokeAll('user-1');
    expect(await sessions.revokeSession('user-1', b.sessionId)).toBe(false);
  });

  it('ends everything of a deleted account', async () => {
    const { kv, sessions } = await setup();
    const a = await sessions.create('user-1');
    const b = await sessions.create('user-1');
    await sessions.endAll('user-1');
    for (const key of [K.index('user-1'), K.session(a.sessionId), K.session(b.sessionId), K.lastUsed(a.sessionId), K.lastUsed(b.sessionId)])
      expect(await kv.get(key), key).toBeNull();
    expect(await kv.setMembers(K.index('user-1'))).toEqual([]);
    expect(await kv.get(K.generation('user-1'))).toBe('1');
  });
});

describe('revocations and replicas', () => {
  it('writes every revocation through durably(), and reports each one no replica acknowledged, by kind', async () => {
    const { sessions, calls, replicas, unreplicated } = await setup();
    const a = await sessions.create('user-1');
    const b = await sessions.create('user-1');
    const c = await sessions.create('user-1');
    expect(calls).not.toContain('durably');
    await sessions.revoke(claimsOf('user-1', a.sessionId));
    await sessions.revokeSession('user-1', b.sessionId);
    await sessions.revokeAll('user-1');
    expect(calls.filter((n) => n === 'durably')).toHaveLength(3);
    expect(unreplicated).toEqual([]);

    replicas.acknowledge = false;
    await sessions.revoke(claimsOf('user-1', c.sessionId));
    const d = await sessions.create('user-1');
    expect(await sessions.revokeSession('user-1', d.sessionId)).toBe(true);
    await sessions.revokeAll('user-1');
    const e = await sessions.create('user-1');
    await sessions.rotate(e.refreshToken);
    await sessions.rotate(e.refreshToken).catch(() => undefined);
    expect(unreplicated).toEqual(['logout', 'session', 'all_sessions', 'refresh_reuse']);
    // Not acknowledged is not failed: the revocations hold.
    expect(await sessions.isActive(claimsOf('user-1', c.sessionId))).toBe(false);
    expect(await sessions.isActive(claimsOf('user-1', e.sessionId))).toBe(false);
  });

  it('skips nothing and reports nothing where nobody listens, and the in-process store has no replicas to wait for', async () => {
    const m = await load();
    const kv = new m.store.MemoryStore('test:');
    let written: KeyValueStore | undefined;
    expect(await kv.durably(async (s) => (written = s))).toBe(true);
    expect(written).toBe(kv);
    const unacknowledged = new Proxy(kv, { get: (t, n, r) => (n === 'durably' ? async () => false : (Reflect.get(t, n, r) as unknown)) });
    const sessions = new m.sessions.Sessions(unacknowledged, JWT_CONFIG);
    await expect(sessions.revokeAll('user-1')).resolves.toBeUndefined();
    expect(m.sessions.REVOCATIONS).toEqual(['logout', 'all_sessions', 'session', 'refresh_reuse']);
  });
});

describe('list', () => {
  it('lists the live sessions, newest first, marking the current one, touching nothing when none ended', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { sessions, calls } = await setup();
    const a = await sessions.create('user-1', 'Firefox');
    vi.setSystemTime(T0 + 1000);
    const b = await sessions.create('user-1');
    vi.setSystemTime(T0 + 5000);
    await sessions.rotate(a.refreshToken);
    vi.setSystemTime(T0 + 7000);
    await sessions.rotate(b.refreshToken);
    calls.length = 0;
    expect(await sessions.list('user-1', a.sessionId)).toEqual([
      {
        id: b.sessionId,
        createdAt: new Date(T0 + 1000).toISOString(),
        lastUsedAt: new Date(T0 + 7000).toISOString(),
        expiresAt: new Date(T0 + 1000 + MAX_AGE).toISOString(),
        userAgent: null,
        current: false,
      },
      {
        id: a.sessionId,
        createdAt: new Date(T0).toISOString(),
        lastUsedAt: new Date(T0 + 5000).toISOString(),
        expiresAt: new Date(T0 + MAX_AGE).toISOString(),
        userAgent: 'Firefox',
        current: true,
      },
    ]);
    expect(calls).toEqual(['setMembers', 'mget']);
    expect(await sessions.list('user-2', a.sessionId)).toEqual([]);
  });

  it('counts a session ended at its expiry, even while its record lingers', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, sessions } = await setup();
    const { sessionId } = await sessions.create('user-1');
    const record = (await json(kv, K.session(sessionId)))!;
    await kv.set(K.session(sessionId), JSON.stringify({ ...record, expiresAt: T0 }), 60_000);
    expect(await sessions.list('user-1', sessionId)).toEqual([]);
  });

  it('orders sessions created in the same millisecond by id', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { sessions } = await setup();
    const ids = [(await sessions.create('user-1')).sessionId, (await sessions.create('user-1')).sessionId];
    expect((await sessions.list('user-1', 'none')).map((s) => s.id)).toEqual([...ids].sort().reverse());
  });

  it('drops ended sessions from the index as it reads it', async () => {
    const { kv, sessions } = await setup();
    const ended = await sessions.create('user-1');
    const live = await sessions.create('user-1');
    await sessions.revoke(claimsOf('user-1', ended.sessionId));
    await kv.addToSet(K.index('user-1'), ['stray-session'], 60_000);
    const { sessionId: foreign } = await sessions.create('user-2');
    await kv.addToSet(K.index('user-1'), [foreign], 60_000);
    expect((await sessions.list('user-1', live.sessionId)).map((s) => s.id)).toEqual([live.sessionId]);
    expect(await kv.setMembers(K.index('user-1'))).toEqual([live.sessionId]);
    await sessions.revokeAll('user-1');
    expect(await sessions.list('user-1', live.sessionId)).toEqual([]);
    expect(await kv.setMembers(K.index('user-1'))).toEqual([]);
  });

  it('reads sessions written before they recorded their start, agent and last use', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, sessions } = await setup();
    await kv.set(K.session('old-session'), JSON.stringify({ uid: 'user-1', gen: 0, expiresAt: T0 + 1000 }), 60_000);
    await kv.set(K.session('odd-session'), JSON.stringify({ uid: 'user-1', gen: 0, expiresAt: T0 + 2000, createdAt: T0 - 10 }), 60_000);
    await kv.set(K.lastUsed('odd-session'), 'not a number', 60_000);
    await kv.addToSet(K.index('user-1'), ['old-session', 'odd-session'], 60_000);
    const listed = await sessions.list('user-1', 'none');
    expect(listed.map((s) => [s.id, s.createdAt, s.lastUsedAt, s.userAgent])).toEqual([
      ['odd-session', new Date(T0 - 10).toISOString(), new Date(T0 - 10).toISOString(), null],
      ['old-session', new Date(T0 + 1000 - MAX_AGE).toISOString(), new Date(T0 + 1000 - MAX_AGE).toISOString(), null],
    ]);
  });
});

describe('when the store cannot answer', () => {
  it('fails closed with 503 and Retry-After, passing refusals through unchanged', async () => {
    const { m, kv, sessions } = await setup();
    const { sessionId, refreshToken } = await sessions.create('user-1');
    const claims = claimsOf('user-1', sessionId);
    await kv.close();
    for (const [name, call] of [
      ['create', () => sessions.create('user-1')],
      ['rotate', () => sessions.rotate(refreshToken)],
      ['revoke', () => sessions.revoke(claims)],
      ['revokeAll', () => sessions.revokeAll('user-1')],
      ['list', () => sessions.list('user-1', sessionId)],
      ['revokeSession', () => sessions.revokeSession('user-1', sessionId)],
      ['endAll', () => sessions.endAll('user-1')],
      ['isActive', () => sessions.isActive(claims)],
    ] as const) {
      const err = await (call() as Promise<unknown>).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(m.errors.AppError);
      expect(err, name).toMatchObject({ code: 'service_unavailable', status: 503, headers: { 'Retry-After': '5' } });
    }
    // A refusal decided before the store is asked stays a refusal.
    expect((await refusal(sessions.rotate('malformed'))).code).toBe('invalid_grant');
  });

  it('lists sessions even when dropping ended ones from the index fails', async () => {
    const { m, config } = await setup();
    const kv = new m.store.MemoryStore('x:');
    const failingRemoval = Object.assign(Object.create(kv) as KeyValueStore, { removeFromSet: async () => Promise.reject(new Error('store down')) });
    const sessions = new m.sessions.Sessions(failingRemoval, config);
    const live = await sessions.create('user-1');
    await kv.addToSet(K.index('user-1'), ['stray-session'], 60_000);
    expect((await sessions.list('user-1', live.sessionId)).map((s) => s.id)).toEqual([live.sessionId]);
  });
});

// What a release before the tagged key layout wrote, spelled out as it wrote it (not through
// LEGACY_SESSION_KEYS, so that a mistake there shows here).
async function legacySession(kv: KeyValueStore, uid: string, gen = 0): Promise<{ sid: string; token: string; claims: AccessClaims }> {
  const id = randomUUID();
  const token = `${id}.${'x'.repeat(43)}`;
  const now = Date.now();
  await kv.set(`sess:${id}`, JSON.stringify({ uid, gen, expiresAt: now + MAX_AGE, createdAt: now, userAgent: null }), MAX_AGE);
  await kv.addToSet(`usess:${uid}`, [id], MAX_AGE);
  await kv.set(`slast:${id}`, String(now), MAX_AGE);
  await kv.set(`rt:${createHmac('sha256', REFRESH_SECRET).update(token).digest('base64url')}`, JSON.stringify({ state: 'active', sid: id, uid }), MAX_AGE);
  return { sid: id, token, claims: claimsOf(uid, id) };
}

describe('upgrading from the untagged key layout', () => {
  it('honours a session an earlier release created: token check, list, rotation, reuse detection', async () => {
    const { kv, m, sessions } = await setup({}, { transition: true });
    const old = await legacySession(kv, 'user-1');
    expect(await sessions.isActive(old.claims)).toBe(true);
    expect((await sessions.list('user-1', old.sid)).map((s) => [s.id, s.current])).toEqual([[old.sid, true]]);
    const rotated = await sessions.rotate(old.token);
    expect(rotated).toMatchObject({ sessionId: old.sid, userId: 'user-1' });
    // The new token works, in both layouts; the old one is now reuse, which ends the session in both.
    expect(await kv.get(`rt:${createHmac('sha256', REFRESH_SECRET).update(rotated.refreshToken).digest('base64url')}`)).toContain('active');
    await expect(sessions.rotate(old.token)).rejects.toBeInstanceOf(m.sessions.RefreshReuseError);
    expect(await kv.get(`sess:${old.sid}`)).toBeNull();
    expect(await sessions.isActive(old.claims)).toBe(false);
  });

  it('writes what it creates to both layouts, each with its own generation, so an earlier release can read it', async () => {
    const { kv, sessions } = await setup({}, { transition: true });
    await kv.bump('ugen:user-1', MAX_AGE);
    await kv.bump('ugen:user-1', MAX_AGE);
    await kv.bump('ugen:user-1', MAX_AGE);
    const { sessionId, refreshToken } = await sessions.create('user-1');
    expect((await json(kv, `sess:${sessionId}`))?.gen).toBe(3);
    expect((await json(kv, K.session(sessionId)))?.gen).toBe(0);
    expect(await kv.setMembers('usess:user-1')).toEqual([sessionId]);
    expect(await kv.get(`slast:${sessionId}`)).not.toBeNull();
    expect(await kv.get(`rt:${createHmac('sha256', REFRESH_SECRET).update(refreshToken).digest('base64url')}`)).toContain('active');
    expect(await sessions.isActive(claimsOf('user-1', sessionId))).toBe(true);
  });

  it('revokes in both layouts: logout, logout-all, ending one session, account deletion', async () => {
    const { kv, sessions } = await setup({}, { transition: true });
    const mine = await sessions.create('user-1');
    const claims = claimsOf('user-1', mine.sessionId);
    await sessions.revoke(claims);
    expect(await kv.get(`bl:${claims.jti}`)).toBe('1');
    expect(await kv.get(K.blocked(claims.sid, claims.jti))).toBe('1');
    expect(await kv.get(`sess:${mine.sessionId}`)).toBeNull();
    expect(await kv.get(K.session(mine.sessionId))).toBeNull();

    const old = await legacySession(kv, 'user-1');
    const created = await sessions.create('user-1');
    await sessions.revokeAll('user-1');
    expect([await kv.get('ugen:user-1'), await kv.get(K.generation('user-1'))]).toEqual(['1', '1']);
    expect(await sessions.isActive(old.claims)).toBe(false);
    expect(await sessions.isActive(claimsOf('user-1', created.sessionId))).toBe(false);

    const one = await sessions.create('user-1');
    expect(await sessions.revokeSession('user-1', one.sessionId)).toBe(true);
    for (const key of [`sess:${one.sessionId}`, `slast:${one.sessionId}`, K.session(one.sessionId), K.lastUsed(one.sessionId)])
      expect(await kv.get(key), key).toBeNull();
    expect(await kv.setMembers('usess:user-1')).not.toContain(one.sessionId);
    expect(await kv.setMembers(K.index('user-1'))).not.toContain(one.sessionId);

    const last = await legacySession(kv, 'user-1', 1);
    await sessions.endAll('user-1');
    expect(await kv.setMembers('usess:user-1')).toEqual([]);
    expect(await kv.setMembers(K.index('user-1'))).toEqual([]);
    expect(await kv.get(`sess:${last.sid}`)).toBeNull();
  });

  it('lists the sessions of both layouts, each with its own last use, and ends one an earlier release created', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, sessions } = await setup({}, { transition: true });
    await kv.bump('ugen:user-1', MAX_AGE);
    const old = await legacySession(kv, 'user-1', 1);
    await kv.set(`slast:${old.sid}`, String(T0 + 5000), MAX_AGE);
    vi.setSystemTime(T0 + 1000);
    const mine = await sessions.create('user-1');
    expect((await sessions.list('user-1', mine.sessionId)).map((s) => [s.id, s.lastUsedAt, s.current])).toEqual([
      [mine.sessionId, new Date(T0 + 1000).toISOString(), true],
      [old.sid, new Date(T0 + 5000).toISOString(), false],
    ]);
    expect(await sessions.revokeSession('user-1', old.sid)).toBe(true);
    expect(await kv.get(`sess:${old.sid}`)).toBeNull();
    expect(await kv.setMembers('usess:user-1')).toEqual([mine.sessionId]);
  });

  it('treats a refresh token one release used as reuse in the other', async () => {
    const { kv, m, sessions } = await setup({}, { transition: true });
    const { sessionId, refreshToken } = await sessions.create('user-1');
    // An earlier release rotates it: it claims only the untagged record.
    const legacyKey = `rt:${createHmac('sha256', REFRESH_SECRET).update(refreshToken).digest('base64url')}`;
    await kv.swapIfExists(legacyKey, JSON.stringify({ state: 'used', sid: sessionId, uid: 'user-1' }), 60_000);
    await expect(sessions.rotate(refreshToken)).rejects.toBeInstanceOf(m.sessions.RefreshReuseError);
    expect(await kv.get(K.session(sessionId))).toBeNull();
    expect(await kv.get(`sess:${sessionId}`)).toBeNull();
  });

  it('reads and writes the tagged layout alone once the longest session and a day have passed', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const { kv, sessions, writes } = await setup({}, { transition: true });
    vi.setSystemTime(T0 + MAX_AGE + 86_400_000 - 1);
    const old = await legacySession(kv, 'user-1');
    expect(await sessions.isActive(old.claims)).toBe(true);
    vi.setSystemTime(T0 + MAX_AGE + 86_400_000);
    expect(await sessions.isActive(old.claims)).toBe(false);
    writes.length = 0;
    await sessions.create('user-1');
    expect(writes.map((w) => w.key).filter((key) => !key.includes('{'))).toEqual([]);
  });
});

describe('LayoutTransition', () => {
  it("starts once for the whole deployment: later processes keep the first one's start", async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const m = await load();
    const kv = new m.store.MemoryStore('t:');
    const first = await LayoutTransition.start(kv, MAX_AGE);
    vi.setSystemTime(T0 + MAX_AGE);
    const later = await LayoutTransition.start(kv, MAX_AGE);
    transitions.push(first, later);
    expect([first.active, later.active]).toEqual([true, true]);
    vi.setSystemTime(T0 + MAX_AGE + 86_400_000);
    expect([first.active, later.active]).toEqual([false, false]);
    // A process started after the end does not begin another.
    const after = await LayoutTransition.start(kv, MAX_AGE);
    transitions.push(after);
    expect(after.active).toBe(false);
  });

  it('assumes the transition while the store cannot say, and learns when it can', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    const m = await load();
    const kv = new m.store.MemoryStore('t:');
    await kv.set('keylayout:tagged', String(T0 - 2 * MAX_AGE), 10 * MAX_AGE);
    let down = true;
    const flaky = Object.assign(Object.create(kv) as KeyValueStore, {
      get: (key: string) => (down ? Promise.reject(new Error('store down')) : kv.get(key)),
    });
    const transition = await LayoutTransition.start(flaky, MAX_AGE);
    transitions.push(transition);
    expect(transition.active).toBe(true);
    down = false;
    await transition.check();
    expect(transition.active).toBe(false);
  });

  it('is not needed where the first process finds no session of the old layout, and every later one agrees', async () => {
    const m = await load();
    const kv = new m.store.MemoryStore('t:');
    const looked: string[] = [];
    const first = await LayoutTransition.start(kv, MAX_AGE, { findOldLayout: async () => (looked.push('first'), false) });
    const later = await LayoutTransition.start(kv, MAX_AGE, { findOldLayout: async () => (looked.push('later'), true) });
    transitions.push(first, later);
    expect([first.active, later.active, looked]).toEqual([false, false, ['first']]);
    expect(await kv.get('keylayout:tagged')).toBe('not-needed');
  });

  it('runs where the first process finds old sessions, cannot tell, or fails to look', async () => {
    for (const findOldLayout of [async () => true, async () => undefined, () => Promise.reject(new Error('SCAN refused'))]) {
      const m = await load();
      const kv = new m.store.MemoryStore('t:');
      const transition = await LayoutTransition.start(kv, MAX_AGE, { findOldLayout });
      transitions.push(transition);
      expect(transition.active).toBe(true);
      expect(Number(await kv.get('keylayout:tagged'))).toBeGreaterThan(0);
    }
  });

  it('never runs where the untagged layout cannot exist', () => {
    expect(LayoutTransition.none().active).toBe(false);
  });
});
