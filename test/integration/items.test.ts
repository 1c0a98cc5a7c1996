// The items resource: validation, pagination, sorting, filtering, ownership, and the response
// cache (HIT/MISS, invalidation seen from a second app instance, what is never cached).
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { createMetrics } from '../../src/lib/metrics';
import { countingDatabase, createCacheDownContext, createTestContext, type TestContext } from '../helpers/app';
import { register, type Account } from '../helpers/auth';
import { seedItems } from '../helpers/seed';

let ctx: TestContext;
let owner: Account;
let stranger: Account;
beforeAll(async () => {
  ctx = await createTestContext();
  owner = await register(ctx.app);
  stranger = await register(ctx.app);
});
afterAll(async () => ctx?.close());

const auth = (a: Account) => ({ Authorization: `Bearer ${a.accessToken}` });
const create = (body: object, who: Account = owner) => request(ctx.app).post('/api/v1/items').set(auth(who)).send(body);

function expectError(res: request.Response, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
}

describe('writes', () => {
  it('creates an item owned by the caller', async () => {
    const res = await create({ name: '  Lamp ', description: 'A lamp', price: 19.99, tags: ['home', 'light'] });
    expect(res.status).toBe(201);
    expect(res.body.item).toMatchObject({ name: 'Lamp', description: 'A lamp', price: 19.99, tags: ['home', 'light'], ownerId: owner.userId });
    expect(Object.keys(res.body.item).sort()).toEqual(['createdAt', 'description', 'id', 'name', 'ownerId', 'price', 'tags', 'updatedAt']);
  });

  it('requires authentication', async () => {
    expectError(await request(ctx.app).post('/api/v1/items').send({ name: 'x', price: 1 }), 401, 'unauthorized');
  });

  it.each([
    ['a missing name', { price: 1 }, ['name']],
    ['a numeric name', { name: 5, price: 1 }, ['name']],
    ['an empty name', { name: '   ', price: 1 }, ['name']],
    ['an overlong name', { name: 'n'.repeat(201), price: 1 }, ['name']],
    ['a price given as a string', { name: 'x', price: '12' }, ['price']],
    ['a negative price', { name: 'x', price: -1 }, ['price']],
    ['a price with three decimals', { name: 'x', price: 1.005 }, ['price']],
    ['an overlong description', { name: 'x', price: 1, description: 'd'.repeat(2001) }, ['description']],
    ['too many tags', { name: 'x', price: 1, tags: Array.from({ length: 21 }, (_, i) => `t${i}`) }, ['tags']],
    ['a non-string tag', { name: 'x', price: 1, tags: ['ok', 3] }, ['tags[1]']],
    ['tags as a string', { name: 'x', price: 1, tags: 'a,b' }, ['tags']],
    ['an operator object', { name: { $gt: '' }, price: 1 }, ['name']],
    ['unknown fields', { name: 'x', price: 1, ownerId: randomUUID(), id: randomUUID() }, ['id', 'ownerId']],
  ])('rejects %s with 422 naming the fields', async (_name, body, fields) => {
    const res = await create(body);
    expectError(res, 422, 'validation_failed');
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual(fields);
  });

  // The price is numeric(12, 2) and a tag at most 50 characters: the edges are taken and stored
  // exactly, one step beyond is 422 (never a 500 from the column).
  const MAX_PRICE = 9_999_999_999.99;

  it('takes a price of 0 and the largest the column holds, storing them exactly', async () => {
    for (const price of [0, 0.01, MAX_PRICE]) {
      const res = await create({ name: 'edge', price });
      expect(res.status, String(price)).toBe(201);
      expect(res.body.item.price).toBe(price);
      const read = await request(ctx.app).get(`/api/v1/items/${res.body.item.id}`).expect(200);
      expect(read.body.item.price).toBe(price);
    }
  });

  it('refuses a price above the column, or under 0, on create and update', async () => {
    const { body } = await create({ name: 'edge', price: 1 }).expect(201);
    for (const price of [MAX_PRICE + 0.01, 10_000_000_000, 1e300, -0.01]) {
      const created = await create({ name: 'edge', price });
      expectError(created, 422, 'validation_failed');
      expect(created.body.error.details, String(price)).toEqual([
        { field: 'price', location: 'body', message: `must be a number from 0 to ${MAX_PRICE} with at most 2 decimals` },
      ]);
      const updated = await request(ctx.app).patch(`/api/v1/items/${body.item.id}`).set(auth(owner)).send({ price });
      expectError(updated, 422, 'validation_failed');
    }
  });

  it('takes a tag of 50 characters and refuses one of 51, counted as sent (then trimmed)', async () => {
    const fifty = 't'.repeat(50);
    const res = await create({ name: 'tagged', price: 1, tags: [fifty, '  x '] });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body.item.tags).toEqual([fifty, 'x']);
    const padded = await create({ name: 'tagged', price: 1, tags: [` ${fifty}`] });
    expect(padded.body.error.details).toEqual([{ field: 'tags[0]', location: 'body', message: 'must be 1 to 50 characters' }]);
    const long = await create({ name: 'tagged', price: 1, tags: ['x', `${fifty}t`] });
    expectError(long, 422, 'validation_failed');
    expect(long.body.error.details).toEqual([{ field: 'tags[1]', location: 'body', message: 'must be 1 to 50 characters' }]);
    const blank = await create({ name: 'tagged', price: 1, tags: ['   '] });
    expect(blank.body.error.details).toEqual([{ field: 'tags[0]', location: 'body', message: 'must be 1 to 50 characters' }]);
    // 20 tags at most: 20 are taken.
    expect((await create({ name: 'tagged', price: 1, tags: Array.from({ length: 20 }, (_, i) => `t${i}`) })).status).toBe(201);
  });

  it('updates partially, only for the owner', async () => {
    const { body } = await create({ name: 'Chair', price: 40, tags: ['home'] });
    const id = body.item.id;
    const patched = await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(owner)).send({ price: 35.5 });
    expect(patched.status).toBe(200);
    expect(patched.body.item).toMatchObject({ name: 'Chair', price: 35.5, tags: ['home'] });
    expect(patched.body.item.updatedAt >= body.item.updatedAt).toBe(true);
    expectError(await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(stranger)).send({ price: 1 }), 403, 'forbidden');
    expectError(await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(owner)).send({}), 422, 'validation_failed');
    expectError(await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(owner)).send({ ownerId: stranger.userId }), 422, 'validation_failed');
    expectError(await request(ctx.app).patch(`/api/v1/items/${randomUUID()}`).set(auth(owner)).send({ price: 1 }), 404, 'not_found');
    expectError(await request(ctx.app).patch('/api/v1/items/nope').set(auth(owner)).send({ price: 1 }), 422, 'validation_failed');
    const described = await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(owner)).send({ description: 'Oak' });
    expect(described.body.item.description).toBe('Oak');
    // null clears a nullable field; leaving it out keeps it.
    const cleared = await request(ctx.app).patch(`/api/v1/items/${id}`).set(auth(owner)).send({ description: null });
    expect(cleared.status).toBe(200);
    expect(cleared.body.item).toMatchObject({ description: null, name: 'Chair', price: 35.5 });
    expect((await request(ctx.app).get(`/api/v1/items/${id}`)).body.item.description).toBeNull();
  });

  it('deletes, only for the owner', async () => {
    const { body } = await create({ name: 'Vase', price: 10 });
    const id = body.item.id;
    expectError(await request(ctx.app).delete(`/api/v1/items/${id}`).set(auth(stranger)), 403, 'forbidden');
    expect((await request(ctx.app).delete(`/api/v1/items/${id}`).set(auth(owner))).status).toBe(204);
    expectError(await request(ctx.app).get(`/api/v1/items/${id}`), 404, 'not_found');
    expectError(await request(ctx.app).delete(`/api/v1/items/${id}`).set(auth(owner)), 404, 'not_found');
  });
});

describe('listing', () => {
  let tag: string;
  beforeAll(async () => {
    tag = `t-${randomUUID().slice(0, 8)}`;
    const base = Date.parse('2026-01-01T00:00:00Z');
    await seedItems(
      ctx.deps.db,
      owner.userId,
      Array.from({ length: 25 }, (_, i) => ({
        name: `item-${String(i).padStart(2, '0')}`,
        price: (i * 7) % 25,
        tags: [tag, i % 2 ? 'odd' : 'even'],
        createdAt: new Date(base + i * 60_000).toISOString(),
      })),
    );
  });
  const list = (query: string) => request(ctx.app).get(`/api/v1/items?tag=${tag}&${query}`);

  it('paginates with a total, 20 by default', async () => {
    const first = await list('');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ page: 1, limit: 20, total: 25 });
    expect(first.body.items).toHaveLength(20);
    const last = await list('page=3&limit=10');
    expect(last.body).toMatchObject({ page: 3, limit: 10, total: 25 });
    expect(last.body.items).toHaveLength(5);
    const beyond = await list('page=9&limit=10');
    expect(beyond.body).toMatchObject({ items: [], total: 25 });
  });

  it('sorts by the whitelisted keys only', async () => {
    const names = (res: request.Response) => res.body.items.map((i: { name: string }) => i.name);
    expect(names(await list('sort=name&limit=3'))).toEqual(['item-00', 'item-01', 'item-02']);
    expect(names(await list('sort=-name&limit=2'))).toEqual(['item-24', 'item-23']);
    expect(names(await list('sort=-createdAt&limit=1'))).toEqual(['item-24']);
    expect(names(await list('sort=createdAt&limit=1'))).toEqual(['item-00']);
    const prices = (await list('sort=price&limit=100')).body.items.map((i: { price: number }) => i.price);
    expect(prices).toEqual([...prices].sort((a, b) => a - b));
    expectError(await list('sort=owner_id'), 422, 'validation_failed');
    expectError(await list('sort=price;DROP TABLE items'), 422, 'validation_failed');
  });

  it('filters by tag', async () => {
    const odd = await request(ctx.app).get(`/api/v1/items?tag=odd&limit=100`);
    expect(odd.body.items.every((i: { tags: string[] }) => i.tags.includes('odd'))).toBe(true);
  });

  it('reads the forms that only the validation chains take (leading zeros, a plus sign) the same way', async () => {
    // The fast path leaves these to express-validator, whose converted values the handler then uses.
    const res = await list('page=03&limit=%2B10');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ page: 3, limit: 10, total: 25 });
    expect(res.body.items).toHaveLength(5);
  });

  it.each(['limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'page=0', 'page=-1', 'page=1e3'])('rejects %s with 422, never clamps', async (q) => {
    expectError(await list(q), 422, 'validation_failed');
  });

  it('gzips a large page for clients that accept it', async () => {
    const res = await list('limit=25').set('Accept-Encoding', 'gzip');
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.body.items).toHaveLength(25);
  });
});

describe('response cache', () => {
  it('MISS then HIT, with the same body', async () => {
    const { body } = await create({ name: 'Cached', price: 5 });
    const url = `/api/v1/items/${body.item.id}`;
    const first = await request(ctx.app).get(url);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(ctx.app).get(url);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('normalises the list key: parameter order, defaults and unknown parameters do not matter', async () => {
    const tag = `n-${randomUUID().slice(0, 8)}`;
    expect((await request(ctx.app).get(`/api/v1/items?tag=${tag}&limit=20&page=1`)).headers['x-cache']).toBe('MISS');
    expect((await request(ctx.app).get(`/api/v1/items?page=1&tag=${tag}`)).headers['x-cache']).toBe('HIT');
    expect((await request(ctx.app).get(`/api/v1/items?tag=${tag}&utm_source=x&_=${Date.now()}`)).headers['x-cache']).toBe('HIT');
    expect((await request(ctx.app).get(`/api/v1/items?tag=${tag}&limit=21`)).headers['x-cache']).toBe('MISS');
  });

  it('never lets Host or X-Forwarded-Host shape a cached body', async () => {
    const { body } = await create({ name: 'Hosted', price: 1 });
    const url = `/api/v1/items/${body.item.id}`;
    const a = await request(ctx.app).get(url).set('Host', 'evil.example.net').set('X-Forwarded-Host', 'evil.example.net');
    const b = await request(ctx.app).get(url);
    expect(b.headers['x-cache']).toBe('HIT');
    expect(b.text).toBe(a.text);
    expect(b.text).not.toContain('evil');
  });

  it('invalidates on create, update and delete, as seen from a second app instance', async () => {
    const other = ctx.checked(createApp(ctx.deps)); // another worker: same stores and database, its own memory
    const tag = `inv-${randomUUID().slice(0, 8)}`;
    const listUrl = `/api/v1/items?tag=${tag}`;
    expect((await request(other).get(listUrl)).body.total).toBe(0);
    expect((await request(other).get(listUrl)).headers['x-cache']).toBe('HIT');

    const created = await create({ name: 'New', price: 1, tags: [tag] });
    const afterCreate = await request(other).get(listUrl);
    expect(afterCreate.headers['x-cache']).toBe('MISS');
    expect(afterCreate.body.total).toBe(1);

    const itemUrl = `/api/v1/items/${created.body.item.id}`;
    await request(other).get(itemUrl);
    expect((await request(other).get(itemUrl)).headers['x-cache']).toBe('HIT');
    await request(ctx.app).patch(itemUrl).set(auth(owner)).send({ name: 'Renamed' });
    const afterUpdate = await request(other).get(itemUrl);
    expect(afterUpdate.headers['x-cache']).toBe('MISS');
    expect(afterUpdate.body.item.name).toBe('Renamed');
    expect((await request(other).get(listUrl)).body.items[0].name).toBe('Renamed');

    await request(ctx.app).delete(itemUrl).set(auth(owner));
    expect((await request(other).get(itemUrl)).status).toBe(404);
    expect((await request(other).get(listUrl)).body.total).toBe(0);
  });

  it('never caches a 404 or a 422', async () => {
    const url = `/api/v1/items/${randomUUID()}`;
    expect((await request(ctx.app).get(url)).status).toBe(404);
    const again = await request(ctx.app).get(url);
    expect(again.status).toBe(404);
    expect(again.headers['x-cache']).toBe('MISS');
    const bad = await request(ctx.app).get('/api/v1/items/not-a-uuid');
    expect(bad.headers['x-cache']).toBeUndefined(); // rejected before the cache
  });

  it('never stores a response to a request with credentials under the shared key', async () => {
    const { body } = await create({ name: 'Private read', price: 2 });
    const url = `/api/v1/items/${body.item.id}`;
    expect((await request(ctx.app).get(url).set(auth(owner))).headers['x-cache']).toBe('MISS');
    expect((await request(ctx.app).get(url).set(auth(owner))).headers['x-cache']).toBe('MISS');
    expect((await request(ctx.app).get(url)).headers['x-cache']).toBe('MISS');
    expect((await request(ctx.app).get(url)).headers['x-cache']).toBe('HIT');
  });

  it('computes concurrent misses once per process, and counts hits and misses', async () => {
    const tag = `st-${randomUUID().slice(0, 8)}`;
    await seedItems(ctx.deps.db, owner.userId, [{ name: 'herd', price: 1, tags: [tag] }]);
    const { db, queries } = countingDatabase(ctx.deps.db);
    const metrics = createMetrics();
    const app = ctx.checked(createApp({ ...ctx.deps, db }, { metrics }));
    const results = await Promise.all(Array.from({ length: 10 }, () => request(app).get(`/api/v1/items?tag=${tag}`)));
    expect(results.every((r) => r.status === 200 && r.body.total === 1)).toBe(true);
    expect(results.every((r) => ['MISS', 'HIT'].includes(String(r.headers['x-cache'])))).toBe(true);
    expect(queries()).toBe(1);
    const counts = Object.fromEntries((await metrics.cacheEvents.get()).values.map((v) => [v.labels.result, v.value]));
    expect((counts.miss ?? 0) + (counts.hit ?? 0)).toBe(10);
    expect(counts.miss).toBeGreaterThanOrEqual(1);
  });
});

describe('with the cache Redis down', () => {
  let down: TestContext;
  beforeAll(async () => {
    down = await createCacheDownContext();
  });
  afterAll(async () => down?.close());

  it('serves from the database with X-Cache: BYPASS, fast, and writes still work', async () => {
    const account = await register(down.app);
    const created = await request(down.app).post('/api/v1/items').set(auth(account)).send({ name: 'Offline', price: 3 });
    expect(created.status).toBe(201);
    const t0 = Date.now();
    const res = await request(down.app).get(`/api/v1/items/${created.body.item.id}`);
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('BYPASS');
    expect(res.body.item.name).toBe('Offline');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect((await request(down.app).get('/api/v1/items')).headers['x-cache']).toBe('BYPASS');
  });
});
