// hpp and express-mongo-sanitize must actually work on Express 5 (whose req.query getter breaks
// both unless the query is materialised), and hostile input must never cause a 500.
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jsonBody } from '../../src/middleware/body';
import { errorHandler } from '../../src/middleware/error-handler';
import { queryHardening } from '../../src/middleware/query';
import { requestId } from '../../src/middleware/request-id';
import { createTestContext, type TestContext } from '../helpers/app';
import { captureLogger } from '../helpers/log-capture';
import { seedItems, seedUser } from '../helpers/seed';

// An echo app with exactly the production hardening chain, to observe what handlers receive.
function echoApp() {
  const { logger } = captureLogger();
  const app = express();
  app.set('query parser', 'simple');
  app.use(requestId(), jsonBody(10_000), queryHardening(logger));
  app.all('/echo', (req, res) => {
    res.json({
      query: req.query,
      queryPolluted: (req as unknown as { queryPolluted?: unknown }).queryPolluted,
      body: req.body ?? null,
      bodyProto: req.body ? Object.getPrototypeOf(req.body) === Object.prototype : null,
    });
  });
  app.use(errorHandler(logger));
  return app;
}

describe('on the bare chain', () => {
  const app = echoApp();

  it('hpp keeps the last of duplicate query parameters and sets the rest aside', async () => {
    const res = await request(app).get('/echo?sort=price&sort=name&page=1');
    expect(res.status).toBe(200);
    expect(res.body.query).toEqual({ sort: 'name', page: '1' });
    expect(res.body.queryPolluted).toEqual({ sort: ['price', 'name'] });
  });

  it('mongo-sanitize removes $ operator keys from the query (no 500 on Express 5)', async () => {
    const res = await request(app).get('/echo?$where=1&ok=yes&a.b=1');
    expect(res.status).toBe(200);
    expect(res.body.query).toEqual({ ok: 'yes' });
  });

  it('mongo-sanitize removes $ operator keys from the body, at any depth', async () => {
    const res = await request(app)
      .post('/echo')
      .send({ email: { $ne: null }, list: [{ $gt: '' }], ok: 1 });
    expect(res.status).toBe(200);
    expect(res.body.body).toEqual({ email: {}, list: [{}], ok: 1 });
  });

  it('drops __proto__ and constructor keys from JSON bodies', async () => {
    const res = await request(app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"a":{"__proto__":{"x":1}},"ok":1}');
    expect(res.status).toBe(200);
    expect(res.body.body).toEqual({ a: {}, ok: 1 });
    expect(res.body.bodyProto).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('treats __proto__ in the query as a plain, harmless key', async () => {
    const res = await request(app).get('/echo?__proto__[polluted]=1&__proto__=x&constructor[prototype][p]=1');
    expect(res.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).p).toBeUndefined();
  });
});

describe('through the real app', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
    const owner = await seedUser(ctx.deps.db);
    await seedItems(ctx.deps.db, owner, [
      { name: 'alpha', price: 3, tags: ['a'] },
      { name: 'beta', price: 1, tags: ['b'] },
      { name: 'gamma', price: 2, tags: ['a', 'b'] },
    ]);
  });
  afterAll(async () => ctx?.close());

  it('duplicate query parameters: the last wins, no 500', async () => {
    const res = await request(ctx.app).get('/api/v1/items?sort=-price&sort=price&limit=1&limit=2');
    expect(res.status).toBe(200);
    expect(res.body.limit).toBe(2);
    expect(res.body.items.map((i: { name: string }) => i.name)).toEqual(['beta', 'gamma']);
  });

  it.each([
    '/api/v1/items?tag[$ne]=x',
    '/api/v1/items?$where=sleep(1000)',
    '/api/v1/items?page[$gt]=0',
    '/api/v1/items?sort[]=price',
    '/api/v1/items?__proto__[admin]=1',
    '/api/v1/items?constructor[prototype][admin]=1',
    '/api/v1/items?limit=10%00',
    '/api/v1/items?tag=%27%20OR%201%3D1--',
    '/api/v1/items/%24ne',
  ])('%s never causes a 500', async (url) => {
    const res = await request(ctx.app).get(url);
    expect([200, 404, 422]).toContain(res.status);
    if (res.status === 200) expect(res.body.items.length).toBeLessThanOrEqual(3);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('operator objects in a JSON body never reach a handler as operators', async () => {
    const res = await request(ctx.app)
      .post('/api/v1/items')
      .send({ name: { $gt: '' }, __proto__: { admin: true } });
    expect(res.status).toBeLessThan(500);
  });

  it('a SQL-looking tag is data, not SQL', async () => {
    const res = await request(ctx.app).get(`/api/v1/items?tag=${encodeURIComponent("a' OR '1'='1")}`);
    expect(res.status).toBe(200);
    expect(res.body.total).toBe(0);
  });
});
