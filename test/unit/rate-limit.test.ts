// The rate limiter on its own, over the in-process store: the count and its window, the 429 and its
// headers, counting failures only, the failure policy when the store is down (open or closed), and
// the keys requests are counted under. Loaded inside each test (test/helpers/fresh.ts).
import { createHash } from 'node:crypto';
import express, { type Request } from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { KeyValueStore } from '../../src/lib/store/types';
import type { SecurityEvent } from '../../src/lib/security-log';
import { fresh } from '../helpers/fresh';
import { captureLogger } from '../helpers/log-capture';
import { watched } from '../helpers/watched-store';

const load = () =>
  fresh(async () => ({
    limits: await import('../../src/middleware/rate-limit.js'),
    store: await import('../../src/lib/store/memory-store.js'),
    handler: await import('../../src/middleware/error-handler.js'),
  }));
type Modules = Awaited<ReturnType<typeof load>>;
type LimiterOptions = Parameters<Modules['limits']['rateLimiter']>[0];

interface Setup extends Partial<Omit<LimiterOptions, 'store' | 'logger'>> {
  /** The store fails every call. */
  down?: boolean;
  /** The store fails calls of this method only. */
  downFor?: string;
}

/** An app limited by one limiter; /ok answers 200, /status/:code that status. */
async function limited(setup: Setup = {}) {
  const m = await load();
  const memory = new m.store.MemoryStore('t:');
  const calls: string[] = [];
  const store = watched<KeyValueStore>(
    memory,
    (name, args) => calls.push(`${name} ${args.map((a) => JSON.stringify(a)).join(' ')}`),
    (name) => (setup.down || name === setup.downFor ? new Error('connection refused') : undefined),
  );
  const log = captureLogger('debug');
  const refusals: string[] = [];
  const storeErrors: string[] = [];
  const events: SecurityEvent[] = [];
  const { down: _down, downFor: _downFor, ...options } = setup;
  const app = express();
  app.set('trust proxy', false);
  app.use(
    m.limits.rateLimiter({
      name: 'login',
      rule: { max: 2, windowMs: 60_000 },
      store,
      logger: log.logger,
      failOpen: false,
      onLimited: (name) => refusals.push(name),
      onStoreError: (name) => storeErrors.push(name),
      ...options,
    }),
  );
  app.get('/ok', (_req, res) => res.json({ ok: true }));
  app.get('/status/:code', (req, res) => res.status(Number(req.params.code)).json({}));
  app.use(m.handler.errorHandler(log.logger, (event) => events.push(event)));
  const logged = () => log.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return { app, memory, calls, refusals, storeErrors, events, logged };
}

describe('rateLimiter', () => {
  it('lets max requests through per window, then answers 429 with the standard headers', async () => {
    const { app, refusals, events } = await limited();
    const first = await request(app).get('/ok');
    expect(first.status).toBe(200);
    // draft-8 (IETF RateLimit fields): the policy named after the limiter, its quota and window.
    expect(first.headers['ratelimit-policy']).toMatch(/^"login"; q=2; w=60; pk=:[A-Za-z0-9+/=]+:$/);
    expect(first.headers.ratelimit).toBe('"login"; r=1; t=60');
    expect(first.headers['x-ratelimit-limit']).toBeUndefined();
    expect(first.headers['cache-control']).toBeUndefined();
    expect((await request(app).get('/ok')).headers.ratelimit).toBe('"login"; r=0; t=60');
    const refused = await request(app).get('/ok');
    expect([refused.status, refused.body.error.code, refused.headers['cache-control'], refused.headers['retry-after']]).toEqual([
      429,
      'rate_limited',
      'no-store',
      '60',
    ]);
    expect(refusals).toEqual(['login']);
    expect(events).toEqual([expect.objectContaining({ code: 'rate_limited', reason: 'limiter login' })]);
  });

  it('counts in the shared store under the limiter name and the key, for the rule window', async () => {
    const { app, calls } = await limited({ key: () => 'someone', rule: { max: 5, windowMs: 90_000 } });
    await request(app).get('/ok').expect(200);
    expect(calls).toEqual(['hit "rl:login:someone" 90000']);
  });

  it('counts by client address by default', async () => {
    const { app, calls } = await limited();
    await request(app).get('/ok').expect(200);
    expect(calls).toEqual([expect.stringMatching(/^hit "rl:login:(127\.0\.0\.1|::1\/56)" 60000$/)]);
  });

  it('counts only failures when told: a success takes its hit back', async () => {
    const { app, calls } = await limited({ countFailuresOnly: true, key: () => 'k' });
    for (let i = 0; i < 4; i++) await request(app).get('/ok').expect(200);
    await request(app).get('/status/401').expect(401);
    await request(app).get('/status/422').expect(422);
    expect((await request(app).get('/status/401')).status).toBe(429);
    expect(calls.filter((c) => c.startsWith('unhit'))).toEqual(Array(4).fill('unhit "rl:login:k"'));
  });

  it('logs a success that could not take its hit back in the app log, once, and answers as usual', async () => {
    const { app, logged } = await limited({ countFailuresOnly: true, key: () => 'k', downFor: 'unhit' });
    const errors: unknown[] = [];
    const original = console.error;
    console.error = (...args: unknown[]) => errors.push(args);
    try {
      await request(app).get('/ok').expect(200);
      await new Promise((r) => setImmediate(r));
    } finally {
      console.error = original;
    }
    expect(errors).toEqual([]); // nothing on stderr outside the JSON log
    expect(logged().filter((l) => l.message === 'rate limit store unavailable; a success still counts against the limit')).toEqual([
      expect.objectContaining({ level: 'warn', limiter: 'login', error: 'connection refused' }),
    ]);
  });

  it('counts only the failure status it is given, when given one', async () => {
    const { app } = await limited({ countFailuresOnly: true, failureStatus: 401, key: () => 'k' });
    for (let i = 0; i < 3; i++) await request(app).get('/status/422').expect(422);
    await request(app).get('/ok').expect(200);
    await request(app).get('/status/401').expect(401);
    await request(app).get('/status/401').expect(401);
    expect((await request(app).get('/ok')).status).toBe(429);
  });

  it('counts every request unless told otherwise', async () => {
    const { app } = await limited({ key: () => 'k' });
    await request(app).get('/status/404').expect(404);
    await request(app).get('/ok').expect(200);
    expect((await request(app).get('/ok')).status).toBe(429);
  });

  it('fails closed with 503 when the store is down, and logs it', async () => {
    const { app, storeErrors, logged } = await limited({ down: true });
    const res = await request(app).get('/ok');
    expect([res.status, res.body.error.code, res.headers['retry-after']]).toEqual([503, 'service_unavailable', '5']);
    expect(storeErrors).toEqual(['login']);
    expect(logged()).toContainEqual(
      expect.objectContaining({ level: 'error', message: 'rate limit store unavailable; refusing request', limiter: 'login', error: 'connection refused' }),
    );
  });

  it('fails open when told to, with a warning', async () => {
    const { app, storeErrors, logged } = await limited({ down: true, failOpen: true, name: 'api' });
    expect((await request(app).get('/ok')).status).toBe(200);
    expect(storeErrors).toEqual(['api']);
    expect(logged()).toEqual([
      expect.objectContaining({ level: 'warn', message: 'rate limit store unavailable; allowing request', limiter: 'api', error: 'connection refused' }),
    ]);
  });
});

describe('rateLimiter without the optional hooks', () => {
  async function bare(kv: KeyValueStore) {
    const m = await load();
    const app = express();
    app.use(
      m.limits.rateLimiter({ name: 'bare', rule: { max: 1, windowMs: 60_000 }, store: kv, logger: captureLogger().logger, failOpen: false, key: () => 'k' }),
    );
    app.get('/ok', (_req, res) => res.json({}));
    return app;
  }

  it('refuses over the limit, marking the refusal no-store itself whatever renders it', async () => {
    const m = await load();
    const app = await bare(new m.store.MemoryStore('t:'));
    await request(app).get('/ok').expect(200);
    const refused = await request(app).get('/ok');
    expect([refused.status, refused.headers['cache-control']]).toEqual([429, 'no-store']);
  });

  it('fails closed when the store is down', async () => {
    const m = await load();
    const down = watched<KeyValueStore>(
      new m.store.MemoryStore('t:'),
      () => undefined,
      () => new Error('connection refused'),
    );
    expect((await request(await bare(down)).get('/ok')).status).toBe(503);
  });
});

describe('limiter keys', () => {
  const req = (fields: { ip?: string; remoteAddress?: string; body?: unknown; sub?: string }) =>
    ({
      ip: fields.ip,
      socket: { remoteAddress: fields.remoteAddress },
      body: fields.body,
      earlyRevocationCheck: fields.sub === undefined ? undefined : { claims: { sub: fields.sub } },
    }) as unknown as Request;

  it('counts an IPv4 client by its address, written either way, and an IPv6 client by its /56', async () => {
    const { limits } = await load();
    expect(limits.clientKey(req({ ip: '203.0.113.7' }))).toBe('203.0.113.7');
    expect(limits.clientKey(req({ ip: '::ffff:203.0.113.7' }))).toBe('203.0.113.7');
    expect(limits.clientKey(req({ ip: '2001:db8:1:2ff:3:4:5:6' }))).toBe('2001:db8:1:200::/56');
    expect(limits.clientKey(req({ ip: '2001:db8:1:2aa::9' }))).toBe('2001:db8:1:200::/56');
    expect(limits.clientKey(req({ ip: '::ffff:7' }))).toBe('::/56');
  });

  it('falls back to the socket address, then to one shared key', async () => {
    const { limits } = await load();
    expect(limits.clientKey(req({ remoteAddress: '198.51.100.1' }))).toBe('198.51.100.1');
    expect(limits.clientKey(req({}))).toBe('unknown');
  });

  it('counts a request with a valid token by its user, wherever it comes from', async () => {
    const { limits } = await load();
    expect(limits.userOrClientKey(req({ ip: '203.0.113.7', sub: 'user-1' }))).toBe('user:user-1');
    expect(limits.userOrClientKey(req({ ip: '203.0.113.7' }))).toBe('203.0.113.7');
  });

  it('counts a login by address and email, the email compared as the login compares it and never stored in clear', async () => {
    const { limits } = await load();
    const hash = (email: string) => createHash('sha256').update(email).digest('base64url').slice(0, 22);
    expect(limits.emailKey('ada@example.com')).toBe(hash('ada@example.com'));
    expect(limits.emailKey('ada@example.com')).toHaveLength(22);
    expect(limits.submittedEmail(req({ body: { email: '  Ada@Example.COM ' } }))).toBe('ada@example.com');
    for (const body of [undefined, {}, { email: 5 }, { email: ['a@b.c'] }]) expect(limits.submittedEmail(req({ body })), JSON.stringify(body)).toBeUndefined();
    expect(limits.clientAndEmailKey(req({ ip: '203.0.113.7', body: { email: ' Ada@Example.com' } }))).toBe(`203.0.113.7|${hash('ada@example.com')}`);
    expect(limits.clientAndEmailKey(req({ ip: '203.0.113.7' }))).toBe(`203.0.113.7|${hash('')}`);
  });
});
