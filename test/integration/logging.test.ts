// Secrets never reach a log line: canary passwords and tokens are sent in every place a careless
// logger could pick them up, then the captured output is searched for them.
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redact, redactUrl, REDACTED } from '../../src/lib/redact';
import { createTestContext, type TestContext } from '../helpers/app';
import { captureLogger } from '../helpers/log-capture';

const PASSWORD = 'Canary-Passw0rd-7f3a9c';
const JWT = 'eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJjYW5hcnkiLCJqdGkiOiJjYW5hcnktanRpIn0.c2lnbmF0dXJlLWNhbmFyeS12YWx1ZQ';
const OPAQUE = 'rt_canary_0123456789abcdef0123456789abcdef';

describe('redaction helpers', () => {
  it('redacts sensitive keys at any depth and JWTs anywhere', () => {
    const out = redact({
      body: { email: 'a@example.com', password: PASSWORD, nested: [{ refreshToken: OPAQUE }] },
      headers: { authorization: `Bearer ${JWT}`, cookie: 'sid=abc', 'x-api-key': 'k' },
      note: `token was ${JWT}`,
    }) as { body: { email: string }; headers: { cookie: string } };
    const text = JSON.stringify(out);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(OPAQUE);
    expect(text).not.toContain(JWT);
    expect(out.body.email).toBe('a@example.com');
    expect(out.headers.cookie).toBe(REDACTED);
  });

  it('redacts credential query parameters and URL passwords', () => {
    expect(redactUrl(`/reset?token=${OPAQUE}&page=2`)).toBe(`/reset?token=${REDACTED}&page=2`);
    expect(redactUrl('/cb?code=abc&state=x&access_token=zzz')).toBe(`/cb?code=${REDACTED}&state=x&access_token=${REDACTED}`);
    expect(redactUrl('/items?sort=price')).toBe('/items?sort=price');
    expect(redact('redis://:s3cret-pass@redis:6379/0')).toBe(`redis://:${REDACTED}@redis:6379/0`);
    expect(redact(`failed with password=${PASSWORD} and token: ${OPAQUE}`)).toBe(`failed with password=${REDACTED} and token: ${REDACTED}`);
  });

  it('keeps the message and stack of logged errors', () => {
    const cap = captureLogger();
    cap.logger.error('it broke', { error: new Error(`db said ${JWT}`) });
    cap.logger.error(new Error('thrown directly'));
    const [first, second] = cap.lines.map((l) => JSON.parse(l));
    expect(first.error.message).toBe(`db said ${REDACTED}`);
    expect(first.error.stack).toMatch(/Error: db said/);
    expect(second.message).toBe('thrown directly');
    expect(second.stack).toMatch(/thrown directly/);
  });
});

describe('through the app', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => ctx?.close());

  it('never logs canary secrets from bodies, headers, query strings or errors', async () => {
    await request(ctx.app).post('/api/v1/items').set('Authorization', `Bearer ${JWT}`).send({ email: 'a@example.com', password: PASSWORD });
    await request(ctx.app).get(`/api/v1/items?token=${OPAQUE}&access_token=${JWT}`).set('Cookie', `session=${OPAQUE}`);
    await request(ctx.app).get(`/api/v1/_diag/boom?password=${PASSWORD}`).set('Authorization', `Bearer ${JWT}`);
    await request(ctx.app).get(`/api/v1/nope/${JWT}`);
    await request(ctx.app).post('/api/v1/items').set('Content-Type', 'application/json').send(`{"password":"${PASSWORD}",`);
    ctx.log.logger.info('careless handler', { body: { password: PASSWORD, refreshToken: OPAQUE }, auth: `Bearer ${JWT}` });

    const text = ctx.log.text();
    expect(ctx.log.lines.length).toBeGreaterThan(5);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(OPAQUE);
    expect(text).not.toContain(JWT);
    // The requests were logged, just without the secrets.
    expect(text).toContain(`/api/v1/items?token=${REDACTED}`);
  });

  it('never echoes a submitted password in a validation error', async () => {
    // A value in the wrong field cannot be recognised in an access log, but the answer never echoes it.
    const res = await request(ctx.app).get(`/api/v1/items?limit=${PASSWORD}`);
    expect(res.status).toBe(422);
    expect(res.body.error.details).toEqual([{ field: 'limit', location: 'query', message: 'must be an integer from 1 to 100' }]);
    expect(JSON.stringify(res.body)).not.toContain(PASSWORD);
  });

  it('writes JSON lines with level, message and timestamp', () => {
    for (const line of ctx.log.lines) {
      const parsed = JSON.parse(line);
      expect(typeof parsed.level).toBe('string');
      expect(typeof parsed.message).toBe('string');
      expect(typeof parsed.timestamp).toBe('string');
    }
  });
});
