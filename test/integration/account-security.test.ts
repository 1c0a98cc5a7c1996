// The account's own security: password rules, the per-account limit on failed password checks,
// sessions the user can list and end, account deletion, and rotation of the refresh secret.
import { randomUUID } from 'node:crypto';
import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/app';
import { loadConfig, type Env } from '../../src/config';
import { commonPasswords, newPasswordProblem } from '../../src/lib/password-policy';
import { hashPassword } from '../../src/lib/passwords';
import { createTestContext, type TestContext } from '../helpers/app';
import { login, me, refresh, register, TEST_PASSWORD, type Account } from '../helpers/auth';

const SECRETS = {
  JWT_ACCESS_SECRET: 'account-security-access-secret-0123456789',
  JWT_REFRESH_SECRET: 'account-security-refresh-secret-0123456789',
};
const ACCOUNT_LIMIT = 4;

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ env: { ...SECRETS, RATE_LIMIT_LOGIN_ACCOUNT_MAX: String(ACCOUNT_LIMIT) } });
});
afterAll(async () => ctx?.close());

/** Another app over the same store and database (another worker, or the next release's settings). */
function sibling(env: Env): Express {
  return ctx.checked(
    createApp({
      ...ctx.deps,
      config: loadConfig({
        NODE_ENV: 'test',
        ...SECRETS,
        RATE_LIMIT_API_MAX: '100000',
        RATE_LIMIT_LOGIN_MAX: '100000',
        RATE_LIMIT_REGISTER_MAX: '100000',
        ...env,
      }),
    }),
  );
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
const newEmail = (local = 'u') => `${local}-${randomUUID().slice(0, 8)}@example.com`;
/** A different client address on every call: the per-address login limit never gets in the way. */
let addressCounter = 0;
const fromNewAddress = () => ({ 'X-Forwarded-For': `203.0.113.${(addressCounter++ % 250) + 1}` });

function expectFieldRefused(res: request.Response, field: string, password: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(422);
  expect(res.body.error.code).toBe('validation_failed');
  expect(res.body.error.details).toEqual([expect.objectContaining({ field, location: 'body' })]);
  expect(JSON.stringify(res.body)).not.toContain(password);
}

describe('password rules', () => {
  it('holds a list of at least 10,000 common passwords, compared ignoring case', () => {
    expect(commonPasswords().size).toBeGreaterThanOrEqual(10_000);
    for (const p of ['password1', 'PASSWORD1', '12345678', 'iloveyou', 'Qwertyuiop']) expect(newPasswordProblem(p, 'someone@example.com'), p).toMatch(/common/);
    expect(newPasswordProblem(TEST_PASSWORD, 'someone@example.com')).toBeUndefined();
  });

  it('refuses a common password on register, naming the field and never echoing it', async () => {
    for (const password of ['password1', 'Password123', '12345678', 'SUNSHINE']) {
      expectFieldRefused(await request(ctx.app).post('/api/v1/auth/register').send({ email: newEmail(), password }), 'password', password);
    }
  });

  it('refuses a password containing the email or its local part (4+ characters), ignoring case', async () => {
    const email = newEmail('ada.lovelace');
    const local = email.split('@')[0]!;
    for (const password of [`${local.toUpperCase()}!2024`, `x${email}x`, `my-${local}-pass`]) {
      expectFieldRefused(await request(ctx.app).post('/api/v1/auth/register').send({ email, password }), 'password', password);
    }
    // A local part of 3 characters is too likely to occur by chance: not a reason to refuse.
    const short = `bob@${randomUUID().slice(0, 8)}.example.com`;
    expect((await request(ctx.app).post('/api/v1/auth/register').send({ email: short, password: 'bobcat rides at dawn' })).status).toBe(201);
  });

  it('applies to a password change (nothing changes, no session ends) but never to login', async () => {
    const account = await register(ctx.app);
    const refused = await request(ctx.app)
      .post('/api/v1/auth/password')
      .set(bearer(account.accessToken))
      .send({ currentPassword: TEST_PASSWORD, newPassword: 'letmein123' });
    expectFieldRefused(refused, 'newPassword', 'letmein123');
    const withEmail = await request(ctx.app)
      .post('/api/v1/auth/password')
      .set(bearer(account.accessToken))
      .send({ currentPassword: TEST_PASSWORD, newPassword: `new ${account.email}` });
    expectFieldRefused(withEmail, 'newPassword', account.email);
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);
    await login(ctx.app, account.email, TEST_PASSWORD);

    // A password set under older rules still logs in.
    const legacyEmail = newEmail('legacy');
    await ctx.deps.db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [randomUUID(), legacyEmail, await hashPassword('password1')]);
    await login(ctx.app, legacyEmail, 'password1');
  });
});

describe('per-account limit on failed password checks (LOGIN_ACCOUNT)', () => {
  const attempt = (email: string, password: string) => request(ctx.app).post('/api/v1/auth/login').set(fromNewAddress()).send({ email, password });

  it('refuses every attempt for the account once reached, from any address, the right password included; other emails unaffected', async () => {
    const victim = await register(ctx.app);
    const bystander = await register(ctx.app);
    for (let i = 0; i < ACCOUNT_LIMIT; i++) expect((await attempt(victim.email, `wrong guess ${i}`)).status).toBe(401);
    const limited = await attempt(victim.email, TEST_PASSWORD);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate_limited');
    expect(limited.headers['ratelimit-policy']).toMatch(/"login-account"; q=4; w=3600/);
    // The email as submitted, lower-cased: another spelling is the same account.
    expect((await attempt(victim.email.toUpperCase(), TEST_PASSWORD)).status).toBe(429);
    expect((await attempt(bystander.email, TEST_PASSWORD)).status).toBe(200);
  });

  it('counts an email whether or not an account has it (the limit reveals nothing)', async () => {
    const nobody = newEmail('nobody');
    for (let i = 0; i < ACCOUNT_LIMIT; i++) expect((await attempt(nobody, `guess ${i}`)).status).toBe(401);
    expect((await attempt(nobody, 'guess again')).status).toBe(429);
  });

  it('counts only wrong passwords: a success neither counts nor resets, a 422 counts for nothing', async () => {
    const account = await register(ctx.app);
    expect((await attempt(account.email, 'wrong 1')).status).toBe(401);
    expect((await attempt(account.email, TEST_PASSWORD)).status).toBe(200);
    for (let i = 0; i < 5; i++) {
      const weak = await request(ctx.app)
        .post('/api/v1/auth/password')
        .set(bearer(account.accessToken))
        .send({ currentPassword: TEST_PASSWORD, newPassword: 'password1' });
      expect(weak.status).toBe(422);
    }
    expect((await attempt(account.email, 'wrong 2')).status).toBe(401);
    expect((await attempt(account.email, 'wrong 3')).status).toBe(401);
    expect((await attempt(account.email, TEST_PASSWORD)).status).toBe(200);
    expect((await attempt(account.email, 'wrong 4')).status).toBe(401);
    expect((await attempt(account.email, TEST_PASSWORD)).status).toBe(429);
  });

  it('shares the count with password changes and account deletions of the signed-in user', async () => {
    const account = await register(ctx.app);
    const wrongChange = () =>
      request(ctx.app).post('/api/v1/auth/password').set(bearer(account.accessToken)).send({ currentPassword: 'not it', newPassword: 'a fine new passphrase' });
    const wrongDelete = () => request(ctx.app).post('/api/v1/auth/delete-account').set(bearer(account.accessToken)).send({ password: 'not it either' });
    expect((await wrongChange()).status).toBe(401);
    expect((await wrongDelete()).status).toBe(401);
    expect((await attempt(account.email, 'wrong')).status).toBe(401);
    expect((await wrongDelete()).status).toBe(401);
    expect((await attempt(account.email, TEST_PASSWORD)).status).toBe(429);
    expect((await wrongChange()).status).toBe(429);
    // Refused before the password was even checked: the account is still there.
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);
  });
});

describe('sessions the user controls', () => {
  const list = (account: { accessToken: string }) => request(ctx.app).get('/api/v1/users/me/sessions').set(bearer(account.accessToken));
  const end = (account: { accessToken: string }, id: string) => request(ctx.app).delete(`/api/v1/users/me/sessions/${id}`).set(bearer(account.accessToken));

  async function twoSessions(): Promise<{ first: Account; second: Account }> {
    const email = newEmail();
    const res = await request(ctx.app).post('/api/v1/auth/register').set('User-Agent', 'agent-first/1.0').send({ email, password: TEST_PASSWORD });
    expect(res.status).toBe(201);
    const first: Account = { email, password: TEST_PASSWORD, userId: res.body.user.id, accessToken: res.body.accessToken, refreshToken: res.body.refreshToken };
    const again = await request(ctx.app)
      .post('/api/v1/auth/login')
      .set('User-Agent', `agent-second/${'x'.repeat(400)}`)
      .send({ email, password: TEST_PASSWORD });
    expect(again.status).toBe(200);
    return { first, second: { ...first, accessToken: again.body.accessToken, refreshToken: again.body.refreshToken } };
  }

  it('lists the live sessions newest first, marking the caller’s, with their user agents and times', async () => {
    const { first, second } = await twoSessions();
    const res = await list(second);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('private, no-store');
    const [newest, oldest] = res.body.sessions;
    expect(res.body.sessions).toHaveLength(2);
    expect(newest.current).toBe(true);
    expect(oldest.current).toBe(false);
    expect(oldest.userAgent).toBe('agent-first/1.0');
    expect(newest.userAgent).toHaveLength(256);
    expect(newest.userAgent.startsWith('agent-second/')).toBe(true);
    expect(newest.createdAt >= oldest.createdAt).toBe(true);
    expect(Date.parse(oldest.expiresAt) - Date.parse(oldest.createdAt)).toBe(ctx.config.jwt.sessionMaxAgeMs);
    expect(oldest.lastUsedAt).toBe(oldest.createdAt);

    // A refresh is a use of that session.
    await new Promise((r) => setTimeout(r, 5));
    expect((await refresh(ctx.app, first.refreshToken)).status).toBe(200);
    const after = (await list(second)).body.sessions.find((s: { id: string }) => s.id === oldest.id);
    expect(after.lastUsedAt > oldest.lastUsedAt).toBe(true);
    expect(after.createdAt).toBe(oldest.createdAt);
  });

  it('ends another session at once: its access and refresh tokens stop working; the caller’s goes on', async () => {
    const { first, second } = await twoSessions();
    const sessions = (await list(second)).body.sessions;
    const other = sessions.find((s: { current: boolean }) => !s.current);
    expect((await end(second, other.id)).status).toBe(204);
    const revoked = await me(ctx.app, first.accessToken);
    expect(revoked.status).toBe(401);
    expect(revoked.body.error.code).toBe('token_revoked');
    expect((await refresh(ctx.app, first.refreshToken)).body.error.code).toBe('invalid_grant');
    expect((await me(ctx.app, second.accessToken)).status).toBe(200);
    expect((await list(second)).body.sessions.map((s: { id: string }) => s.id)).toEqual([sessions.find((s: { current: boolean }) => s.current).id]);
    // Ended already: as unknown.
    expect((await end(second, other.id)).status).toBe(404);
  });

  it("answers 404 for an unknown id and for another user's session, which keeps working", async () => {
    const { second } = await twoSessions();
    const stranger = await register(ctx.app);
    const theirs = (await list(stranger)).body.sessions[0].id;
    const res = await end(second, theirs);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect((await me(ctx.app, stranger.accessToken)).status).toBe(200);
    expect((await end(second, randomUUID())).status).toBe(404);
    expect((await end(second, 'not-a-session')).status).toBe(422);
  });

  it('ending the current session is a logout; after logout-all the list holds only newer sessions', async () => {
    const { first, second } = await twoSessions();
    const own = (await list(second)).body.sessions.find((s: { current: boolean }) => s.current);
    expect((await end(second, own.id)).status).toBe(204);
    expect((await me(ctx.app, second.accessToken)).status).toBe(401);

    expect((await request(ctx.app).post('/api/v1/auth/logout-all').set(bearer(first.accessToken)).send({})).status).toBe(204);
    const fresh = await login(ctx.app, first.email);
    const remaining = (await list(fresh)).body.sessions;
    expect(remaining).toHaveLength(1);
    expect(remaining[0].current).toBe(true);
  });

  it('needs a valid access token', async () => {
    expect((await request(ctx.app).get('/api/v1/users/me/sessions')).status).toBe(401);
    expect((await request(ctx.app).delete(`/api/v1/users/me/sessions/${randomUUID()}`)).status).toBe(401);
  });
});

describe('account deletion', () => {
  it('needs the password: a wrong one is 401 invalid_credentials and changes nothing', async () => {
    const account = await register(ctx.app);
    const res = await request(ctx.app).post('/api/v1/auth/delete-account').set(bearer(account.accessToken)).send({ password: 'not the password' });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_credentials');
    expect((await me(ctx.app, account.accessToken)).status).toBe(200);
    expect((await request(ctx.app).post('/api/v1/auth/delete-account').set(bearer(account.accessToken)).send({})).status).toBe(422);
    expect((await request(ctx.app).post('/api/v1/auth/delete-account').send({ password: TEST_PASSWORD })).status).toBe(401);
  });

  it('deletes the account, its items (cached reads included) and every session at once; the email may register again', async () => {
    const account = await register(ctx.app);
    const other = await login(ctx.app, account.email);
    const keeper = await register(ctx.app);
    const created = await request(ctx.app)
      .post('/api/v1/items')
      .set(bearer(account.accessToken))
      .send({ name: `doomed ${randomUUID()}`, price: 1 });
    expect(created.status).toBe(201);
    const kept = await request(ctx.app).post('/api/v1/items').set(bearer(keeper.accessToken)).send({ name: 'kept', price: 2 });
    const itemId = created.body.item.id;
    // Cached before the deletion, on this worker and in the shared cache.
    expect((await request(ctx.app).get(`/api/v1/items/${itemId}`)).status).toBe(200);
    expect((await request(ctx.app).get(`/api/v1/items/${itemId}`)).headers['x-cache']).toBe('HIT');
    const listed = await request(ctx.app).get('/api/v1/items?limit=100');
    expect(listed.body.items.map((i: { id: string }) => i.id)).toContain(itemId);

    const res = await request(ctx.app).post('/api/v1/auth/delete-account').set(bearer(account.accessToken)).send({ password: TEST_PASSWORD });
    expect(res.status).toBe(204);

    for (const token of [account.accessToken, other.accessToken]) expect((await me(ctx.app, token)).body.error.code).toBe('token_revoked');
    for (const token of [account.refreshToken, other.refreshToken]) expect((await refresh(ctx.app, token)).body.error.code).toBe('invalid_grant');
    expect((await request(ctx.app).post('/api/v1/auth/login').send({ email: account.email, password: TEST_PASSWORD })).status).toBe(401);
    expect((await request(ctx.app).get(`/api/v1/items/${itemId}`)).status).toBe(404);
    const after = (await request(ctx.app).get('/api/v1/items?limit=100')).body.items.map((i: { id: string }) => i.id);
    expect(after).not.toContain(itemId);
    expect(after).toContain(kept.body.item.id);
    const { rows } = await ctx.deps.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users WHERE id = $1', [account.userId]);
    expect(rows[0]!.n).toBe(0);

    const again = await register(ctx.app, account.email);
    expect(again.userId).not.toBe(account.userId);
    expect((await request(ctx.app).get('/api/v1/users/me/sessions').set(bearer(again.accessToken))).body.sessions).toHaveLength(1);
  });
});

describe('refresh-secret rotation (JWT_REFRESH_PREVIOUS_SECRETS)', () => {
  const NEXT = 'account-security-next-refresh-secret-0123456789';

  it('keeps sessions issued under the previous secret working, and rotates them onto the new one', async () => {
    const account = await register(ctx.app);
    const rotated = sibling({ JWT_REFRESH_SECRET: NEXT, JWT_REFRESH_PREVIOUS_SECRETS: SECRETS.JWT_REFRESH_SECRET });
    const res = await refresh(rotated, account.refreshToken);
    expect(res.status).toBe(200);
    // The token issued now is stored under the new secret: found without the previous list.
    const only = sibling({ JWT_REFRESH_SECRET: NEXT });
    const next = await refresh(only, res.body.refreshToken);
    expect(next.status).toBe(200);
    // Reuse of the token rotated under the previous secret is still detected, and ends the session.
    const reused = await refresh(rotated, account.refreshToken);
    expect(reused.body.error.code).toBe('invalid_grant');
    expect((await refresh(only, next.body.refreshToken)).body.error.code).toBe('invalid_grant');
  });

  it('without the previous secret listed, a token issued under it is unknown (invalid_grant)', async () => {
    const account = await register(ctx.app);
    const res = await refresh(sibling({ JWT_REFRESH_SECRET: NEXT }), account.refreshToken);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('invalid_grant');
    // Nothing was consumed: the current configuration still honours it.
    expect((await refresh(ctx.app, account.refreshToken)).status).toBe(200);
  });

  it('refuses a previous refresh secret shorter than 32 bytes at start-up', () => {
    expect(() => loadConfig({ NODE_ENV: 'test', ...SECRETS, JWT_REFRESH_PREVIOUS_SECRETS: `${NEXT},short` })).toThrow(
      /JWT_REFRESH_PREVIOUS_SECRETS: entry 2 must be at least 32 bytes/,
    );
  });
});
