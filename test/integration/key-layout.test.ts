// The key layout in real Redis (src/lib/key-layout.ts): keys that one command reads or writes share a
// hash tag, so a Redis Cluster keeps them on one slot; rate-limit counters kept their names; and an
// upgrade from the untagged layout of earlier releases logs nobody out.
import { createHmac, randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessTokens } from '../../src/lib/access-tokens';
import { createTestContext, type TestContext } from '../helpers/app';
import { login, me, refresh, register } from '../helpers/auth';
import { NO_REDIS_REASON, REDIS_URL, uniqueSuffix } from '../helpers/services';

/** The hash tag of a key: what a Redis Cluster hashes (the first `{...}` with something inside). */
function hashTag(key: string): string | undefined {
  const open = key.indexOf('{');
  const close = key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : undefined;
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

describe.skipIf(!REDIS_URL)(`key layout of a new deployment${REDIS_URL ? '' : ` [${NO_REDIS_REASON}]`}`, () => {
  let ctx: TestContext;
  let redis: Redis;
  const keys = async () => (await redis.keys(`${ctx.keyPrefix}*`)).map((key) => key.slice(ctx.keyPrefix.length)).sort();

  beforeAll(async () => {
    ctx = await createTestContext();
    redis = new Redis(REDIS_URL!, { lazyConnect: true });
    await redis.connect();
  });
  afterAll(async () => {
    redis?.disconnect();
    await ctx?.close();
  });

  it('tags the keys of one session, of one user and of one cache namespace alike, and leaves rate-limit counters as they were', async () => {
    const account = await register(ctx.app);
    const second = await login(ctx.app, account.email);
    expect((await refresh(ctx.app, second.refreshToken)).status).toBe(200);
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);
    const item = await request(ctx.app).post('/api/v1/items').set('Authorization', `Bearer ${account.accessToken}`).send({ name: 'Chair', price: 10 });
    await request(ctx.app).get(`/api/v1/items/${item.body.item.id}`).expect(200);
    await request(ctx.app).get('/api/v1/items').expect(200);
    await request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${account.accessToken}`).expect(204);

    const tagged = (await keys()).filter((key) => key.includes('{'));
    const bySpace = new Map<string, string[]>();
    for (const key of tagged) {
      const tag = hashTag(key);
      expect(tag, key).toBeDefined();
      bySpace.set(tag!, [
        ...(bySpace.get(tag!) ?? []),
        key
          .replace(`{${tag}}`, '{}')
          .replace(/[A-Za-z0-9_-]{43}$/, 'HMAC')
          .replace(new RegExp(UUID, 'g'), 'ID'),
      ]);
    }
    // Each tag names one thing; the keys under it are exactly that thing's.
    const kinds = [...bySpace].map(([tag, names]) => [tag.replace(new RegExp(UUID, 'g'), 'ID'), [...new Set(names)].sort()]);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['s:ID', ['bl:{}:ID', 'rt:{}:HMAC', 'slast:{}']], // the logged-out session: its record is gone
        ['s:ID', ['rt:{}:HMAC', 'sess:{}', 'slast:{}']], // the live one: its used and its current refresh token
        ['u:ID', ['usess:{}']],
        ['c:items', ['cache:resp:{}:items:list:page=1&limit=20&sort=-createdAt&tag=', 'cache:ver:{}']],
        ['c:item:ID', ['cache:resp:{}:items:one:ID', 'cache:ver:{}']],
        ['c:user:ID', ['cache:resp:{}:users:me:ID:me']],
      ]),
    );
    expect(kinds).toHaveLength(6);
    // Counters are single keys, so they kept the names of earlier releases: an upgrade resets no limit.
    expect((await keys()).filter((key) => key.startsWith('rl:'))).toEqual(
      expect.arrayContaining([
        'rl:api:127.0.0.1',
        'rl:refresh:127.0.0.1',
        'rl:register:127.0.0.1',
        expect.stringMatching(/^rl:login-account:/),
        expect.stringMatching(/^rl:login:127\.0\.0\.1\|/),
      ]),
    );
    // Nothing of the old layout was there: no transition, no untagged copies; every later process
    // reads that from the marker, which outlives any transition by far.
    expect((await keys()).filter((key) => !key.includes('{') && !key.startsWith('rl:'))).toEqual(['keylayout:tagged']);
    expect(await redis.get(`${ctx.keyPrefix}keylayout:tagged`)).toBe('not-needed');
    expect(await redis.pttl(`${ctx.keyPrefix}keylayout:tagged`)).toBeGreaterThan(300 * 86_400_000);
  });
});

describe.skipIf(!REDIS_URL)(`upgrading a deployment from the untagged key layout${REDIS_URL ? '' : ` [${NO_REDIS_REASON}]`}`, () => {
  let ctx: TestContext;
  let redis: Redis;
  const prefix = `rampart:test:${uniqueSuffix()}:`;
  const userId = randomUUID();
  const sid = randomUUID();
  const refreshToken = `${sid}.${'y'.repeat(43)}`;
  const refreshSecret = 'r'.repeat(48);

  beforeAll(async () => {
    redis = new Redis(REDIS_URL!, { lazyConnect: true });
    await redis.connect();
    // What a release before the tagged layout wrote at a login, byte for byte, before this one starts.
    const now = Date.now();
    const max = 30 * 86_400_000;
    await redis.set(`${prefix}sess:${sid}`, JSON.stringify({ uid: userId, gen: 0, expiresAt: now + max, createdAt: now, userAgent: 'old app' }), 'PX', max);
    await redis.sadd(`${prefix}usess:${userId}`, sid);
    await redis.set(`${prefix}slast:${sid}`, String(now), 'PX', max);
    const hmac = createHmac('sha256', refreshSecret).update(refreshToken).digest('base64url');
    await redis.set(`${prefix}rt:${hmac}`, JSON.stringify({ state: 'active', sid, uid: userId }), 'PX', max);
    ctx = await createTestContext({ keyPrefix: prefix, env: { JWT_REFRESH_SECRET: refreshSecret } });
  });
  afterAll(async () => {
    redis?.disconnect();
    await ctx?.close();
  });

  it('keeps a session of an earlier release working across the upgrade: token check, list, refresh, logout', async () => {
    const p = ctx.keyPrefix;
    expect(Number(await redis.get(`${p}keylayout:tagged`))).toBeGreaterThan(Date.now() - 60_000);
    // The account the old session belongs to (its id as the old release knew it).
    const account = await register(ctx.app);
    await ctx.deps.db.query('UPDATE users SET id = $1 WHERE id = $2', [userId, account.userId]);
    const { token } = new AccessTokens(ctx.config.jwt).issue(userId, sid);

    expect((await me(ctx.app, token)).status).toBe(200);
    const listed = await request(ctx.app).get('/api/v1/users/me/sessions').set('Authorization', `Bearer ${token}`).expect(200);
    expect(listed.body.sessions).toEqual(expect.arrayContaining([expect.objectContaining({ id: sid, current: true, userAgent: 'old app' })]));
    const rotated = await refresh(ctx.app, refreshToken);
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    // An earlier release still running beside this one can use the new refresh token too.
    const next = createHmac('sha256', ctx.config.jwt.refreshSecret)
      .update(rotated.body.refreshToken as string)
      .digest('base64url');
    expect(JSON.parse((await redis.get(`${p}rt:${next}`))!)).toMatchObject({ state: 'active', sid });
    expect(await redis.exists(`${p}rt:{s:${sid}}:${next}`)).toBe(1);

    await request(ctx.app).post('/api/v1/auth/logout').set('Authorization', `Bearer ${rotated.body.accessToken}`).expect(204);
    // Gone for both releases: the session record in both layouts, the token blocked in both.
    expect(await redis.exists(`${p}sess:${sid}`, `${p}sess:{s:${sid}}`)).toBe(0);
    expect((await me(ctx.app, token)).status).toBe(401);
    expect((await refresh(ctx.app, rotated.body.refreshToken)).status).toBe(401);
  });

  it('sees a write an earlier release invalidated, during the transition', async () => {
    const account = await register(ctx.app);
    const item = await request(ctx.app).post('/api/v1/items').set('Authorization', `Bearer ${account.accessToken}`).send({ name: 'Lamp', price: 3 });
    const path = `/api/v1/items/${item.body.item.id}`;
    await request(ctx.app).get(path).expect(200);
    expect((await request(ctx.app).get(path)).headers['x-cache']).toBe('HIT');
    // An earlier release changes the item and replaces the version under its own (untagged) name.
    await redis.set(`${ctx.keyPrefix}cache:ver:item:${item.body.item.id}`, randomUUID(), 'PX', 60_000);
    expect((await request(ctx.app).get(path)).headers['x-cache']).toBe('MISS');
  });
});
