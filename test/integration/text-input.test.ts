// Text that cannot be stored as sent is refused with 422 naming the field, on every kind of input,
// and nothing is stored altered: a NUL byte (PostgreSQL's text refuses it; it used to leave as 500)
// and an unpaired surrogate (stored, it came back as U+FFFD).
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/app';
import { register, type Account } from '../helpers/auth';

let ctx: TestContext;
let account: Account;
beforeAll(async () => {
  ctx = await createTestContext();
  account = await register(ctx.app);
});
afterAll(async () => ctx?.close());

const NUL = 'a\u0000b';
const LONE_HIGH = '\ud800x';
const LONE_LOW = 'x\udc00';
const bearer = () => ({ Authorization: `Bearer ${account.accessToken}` });

function expectRefused(res: request.Response, field: string, location: 'body' | 'query' | 'params'): void {
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body.error.code).toBe('validation_failed');
  expect(res.body.error.details).toContainEqual({ field, location, message: 'must not contain NUL characters or unpaired surrogates' });
}

/** A JSON body as written, so that escapes such as \u0000 and \ud800 reach the parser verbatim. */
const rawJson = (req: request.Test, json: string) => req.set('Content-Type', 'application/json').send(json);

describe('text that cannot be stored as sent', () => {
  it('is refused in a query parameter, where it used to be a 500', async () => {
    expectRefused(await request(ctx.app).get('/api/v1/items?tag=a%00b'), 'tag', 'query');
    // A surrogate cannot arrive percent-encoded: its UTF-8 spelling (%ED%A0%80) is invalid UTF-8,
    // which the query parser decodes to U+FFFD, as WHATWG URL decoding does. A filter, not stored.
    expect((await request(ctx.app).get('/api/v1/items?tag=%ED%A0%80x')).status).toBe(200);
    // A well-formed character outside the BMP is fine (a pair of surrogates).
    expect((await request(ctx.app).get('/api/v1/items?tag=%F0%9F%98%80')).status).toBe(200);
  });

  it('is refused in a path parameter', async () => {
    const res = await request(ctx.app).get('/api/v1/items/%00');
    expect(res.status).toBe(422);
    expect(res.body.error.details[0].field).toBe('id');
  });

  it('is refused in every string field of a body, on register, profile and items', async () => {
    for (const value of [NUL, LONE_HIGH, LONE_LOW]) {
      const json = JSON.stringify(value);
      expectRefused(
        await rawJson(request(ctx.app).post('/api/v1/auth/register'), `{"email":"x@example.com","password":"a fine passphrase","name":${json}}`),
        'name',
        'body',
      );
      expectRefused(await rawJson(request(ctx.app).patch('/api/v1/users/me').set(bearer()), `{"name":${json}}`), 'name', 'body');
      expectRefused(await rawJson(request(ctx.app).post('/api/v1/items').set(bearer()), `{"name":${json},"price":1}`), 'name', 'body');
      expectRefused(
        await rawJson(request(ctx.app).post('/api/v1/items').set(bearer()), `{"name":"ok","price":1,"description":${json}}`),
        'description',
        'body',
      );
      expectRefused(await rawJson(request(ctx.app).post('/api/v1/items').set(bearer()), `{"name":"ok","price":1,"tags":["fine",${json}]}`), 'tags[1]', 'body');
      expectRefused(await rawJson(request(ctx.app).post('/api/v1/auth/login'), `{"email":"x@example.com","password":${json}}`), 'password', 'body');
    }
  });

  it('stores nothing altered: the account and the items are as they were', async () => {
    const before = await request(ctx.app).get('/api/v1/users/me').set(bearer());
    const { rows } = await ctx.deps.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM items WHERE owner_id = $1 OR name LIKE '%' || chr(65533) || '%' OR description LIKE '%' || chr(65533) || '%'",
      [account.userId],
    );
    expect(rows[0]!.n).toBe(0);
    expect(before.body.user.name).toBe('Test User');
    const users = await ctx.deps.db.query<{ n: number }>("SELECT count(*)::int AS n FROM users WHERE email = 'x@example.com'");
    expect(users.rows[0]!.n).toBe(0);
  });

  it('keeps accepting text that is merely unusual: emoji, combining marks, right-to-left, control characters other than NUL', async () => {
    const name = 'Zoë 😀 ש\u0301 tab\tend';
    const res = await request(ctx.app)
      .post('/api/v1/items')
      .set(bearer())
      .send({ name, price: 1, tags: ['😀'] });
    expect(res.status).toBe(201);
    expect(res.body.item.name).toBe(name);
    const read = await request(ctx.app).get(`/api/v1/items/${res.body.item.id}`);
    expect(read.body.item.name).toBe(name);
  });
});
