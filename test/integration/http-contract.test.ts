// The HTTP conventions of docs/api.md, against a real app over the configured stores and database.
import { gzipSync } from 'node:zlib';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseCompression } from '../../src/middleware/compression';
import { leanJsonResponses } from '../../src/middleware/json-response';
import { createTestContext, type TestContext } from '../helpers/app';

const ORIGIN = 'https://app.example.com';
let ctx: TestContext;

beforeAll(async () => {
  ctx = await createTestContext({ env: { CORS_ORIGINS: `${ORIGIN},http://localhost:5173`, BODY_LIMIT: '2kb' } });
});
afterAll(async () => ctx?.close());

function expectEnvelope(res: request.Response, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json; charset=utf-8/);
  expect(res.body.error.code).toBe(code);
  // A message always says something (the document's Error schema says so too).
  expect(res.body.error.message).toMatch(/\S/);
  expect(res.body.error.requestId).toBe(res.headers['x-request-id']);
  const text = JSON.stringify(res.body);
  expect(text).not.toMatch(/\n\s+at |\.ts:\d|\/src\/|node_modules|"stack"/);
}

const SECURITY_HEADERS = [
  'content-security-policy',
  'strict-transport-security',
  'x-content-type-options',
  'x-frame-options',
  'referrer-policy',
  'cross-origin-opener-policy',
  'cross-origin-resource-policy',
];

function expectSecurityHeaders(res: request.Response): void {
  for (const name of SECURITY_HEADERS) expect(res.headers[name], name).toBeDefined();
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['x-powered-by']).toBeUndefined();
}

describe('security headers', () => {
  it.each([
    ['GET', '/health', 200],
    ['GET', '/api/v1/items', 200],
    ['GET', '/api/v1/nope', 404],
    ['DELETE', '/health', 405],
    ['GET', '/api/v1/_diag/boom', 500],
  ])('%s %s (%i) carries them', async (method, path, status) => {
    const res = await request(ctx.app)[method.toLowerCase() as 'get'](path);
    expect(res.status).toBe(status);
    expectSecurityHeaders(res);
  });

  it('uses a CSP that loads nothing', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });
});

describe('CORS', () => {
  it('echoes an allowed origin with Vary: Origin and exposes the contract headers', async () => {
    const res = await request(ctx.app).get('/api/v1/items').set('Origin', ORIGIN);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers.vary).toMatch(/Origin/);
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    const exposed = String(res.headers['access-control-expose-headers']);
    for (const h of ['X-Request-Id', 'X-Cache', 'RateLimit', 'RateLimit-Policy', 'Retry-After']) expect(exposed).toContain(h);
  });

  it.each([
    ['a foreign origin', 'https://evil.example.net'],
    ['the null origin', 'null'],
    ['a suffix trick', 'https://app.example.com.evil.net'],
    ['a prefix trick', 'https://evilapp.example.com'],
    ['another scheme', 'http://app.example.com'],
    ['another port', 'https://app.example.com:8443'],
  ])('gives %s no Access-Control-Allow-Origin', async (_name, origin) => {
    const res = await request(ctx.app).get('/api/v1/items').set('Origin', origin);
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a preflight with 204 and the allowed methods and headers', async () => {
    const res = await request(ctx.app)
      .options('/api/v1/items')
      .set('Origin', ORIGIN)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'Authorization, Content-Type');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers['access-control-allow-methods']).toBe('GET,POST,PATCH,DELETE');
    expect(res.headers['access-control-allow-headers']).toBe('Authorization,Content-Type,X-Request-Id,traceparent');
  });

  it('answers a foreign preflight without allowing it', async () => {
    const res = await request(ctx.app).options('/api/v1/items').set('Origin', 'https://evil.example.net').set('Access-Control-Request-Method', 'DELETE');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('error envelopes', () => {
  it('400 invalid_json for broken JSON', async () => {
    const res = await request(ctx.app).post('/api/v1/items').set('Content-Type', 'application/json').send('{"name": ');
    expectEnvelope(res, 400, 'invalid_json');
  });

  it.each(['"just a string"', '42', 'null', 'true'])('400 invalid_json for the bare scalar %s', async (body) => {
    const res = await request(ctx.app).post('/api/v1/items').set('Content-Type', 'application/json').send(body);
    expectEnvelope(res, 400, 'invalid_json');
  });

  it('413 payload_too_large over BODY_LIMIT', async () => {
    const res = await request(ctx.app)
      .post('/api/v1/items')
      .send({ name: 'x'.repeat(4096) });
    expectEnvelope(res, 413, 'payload_too_large');
  });

  /** A gzipped JSON body, sent as the bytes it is. */
  const gzipped = (req: request.Test, body: Buffer) =>
    req
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((b: unknown) => b as string)
      .send(body);

  it('applies the limit to the inflated size of a gzip body', async () => {
    const body = gzipSync(JSON.stringify({ name: 'x'.repeat(50_000) }));
    expect(body.length).toBeLessThan(2048);
    expectEnvelope(await gzipped(request(ctx.app).post('/api/v1/_diag/boom'), body), 413, 'payload_too_large');
  });

  it('accepts a gzip body within the limit', async () => {
    const body = gzipSync(JSON.stringify({ name: 'small' }));
    // A route that reads the body: PUT on a GET-only path still parses first, then answers 405.
    expectEnvelope(await gzipped(request(ctx.app).put('/api/v1/items'), body), 405, 'method_not_allowed');
  });

  it('415 for an unsupported Content-Encoding', async () => {
    const res = await request(ctx.app).post('/api/v1/items').set('Content-Type', 'application/json').set('Content-Encoding', 'x-squash').send('{}');
    expectEnvelope(res, 415, 'unsupported_media_type');
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml'])(
    '415 unsupported_media_type for %s',
    async (type) => {
      const res = await request(ctx.app).post('/api/v1/items').set('Content-Type', type).send('name=x');
      expectEnvelope(res, 415, 'unsupported_media_type');
    },
  );

  it('415 for a body without any Content-Type', async () => {
    const res = await request(ctx.app).post('/api/v1/items').set('Content-Length', '2').send(Buffer.from('{}'));
    expectEnvelope(res, 415, 'unsupported_media_type');
  });

  it('422 validation_failed lists every failing field', async () => {
    const res = await request(ctx.app).get('/api/v1/items?page=0&limit=101&sort=owner');
    expectEnvelope(res, 422, 'validation_failed');
    const fields = res.body.error.details.map((d: { field: string; location: string }) => `${d.location}:${d.field}`);
    expect(fields.sort()).toEqual(['query:limit', 'query:page', 'query:sort']);
  });

  it('422 for a malformed id', async () => {
    const res = await request(ctx.app).get('/api/v1/items/not-a-uuid');
    expectEnvelope(res, 422, 'validation_failed');
    expect(res.body.error.details).toEqual([{ field: 'id', location: 'params', message: 'must be a UUID' }]);
  });

  it('404 not_found for an unknown route and an absent resource', async () => {
    expectEnvelope(await request(ctx.app).get('/api/v1/nothing-here'), 404, 'not_found');
    expectEnvelope(await request(ctx.app).get('/nothing'), 404, 'not_found');
    expectEnvelope(await request(ctx.app).get('/api/v1/items/7d3f6b1e-2c55-4e57-9f5d-3f5b1f0d8a11'), 404, 'not_found');
  });

  it('405 method_not_allowed with Allow on a known path', async () => {
    const res = await request(ctx.app).put('/api/v1/items');
    expectEnvelope(res, 405, 'method_not_allowed');
    expect(res.headers.allow).toBe('GET, POST, HEAD');
    const me = await request(ctx.app).put('/api/v1/users/me');
    expectEnvelope(me, 405, 'method_not_allowed');
    expect(me.headers.allow).toBe('GET, PATCH, HEAD');
    const health = await request(ctx.app).delete('/health');
    expectEnvelope(health, 405, 'method_not_allowed');
    expect(health.headers.allow).toBe('GET, HEAD');
  });

  it('400 for a malformed percent-escape in the path', async () => {
    const res = await request(ctx.app).get('/api/v1/items/%E0%A4%A');
    expectEnvelope(res, 400, 'bad_request');
  });

  it('500 internal_error with the generic message only, and the process carries on', async () => {
    const res = await request(ctx.app).get('/api/v1/_diag/boom');
    expectEnvelope(res, 500, 'internal_error');
    expect(res.body.error.message).toBe('Internal server error');
    expect(JSON.stringify(res.body)).not.toMatch(/hunter2|secret|\/srv\//);
    expect(res.headers['cache-control']).toBe('no-store');
    // The error was logged with its stack for operators.
    const line = ctx.log.lines.map((l) => JSON.parse(l)).find((l) => l.message === 'request failed' && l.requestId === res.body.error.requestId);
    expect(line?.error?.stack).toMatch(/diagnostic failure/);
    expect((await request(ctx.app).get('/health')).status).toBe(200);
  });
});

describe('request id', () => {
  it('generates a UUID when none is sent', async () => {
    const res = await request(ctx.app).get('/health');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it.each(['abc-123', 'trace.id_42', '2b0c1f9e-7c1a-4b8e-9d6f-3f2a1c0b9e8d', 'x'.repeat(128)])('echoes the well-formed id %s', async (id) => {
    const res = await request(ctx.app).get('/api/v1/items').set('X-Request-Id', id);
    expect(res.headers['x-request-id']).toBe(id);
  });

  it.each([
    ['oversized', 'x'.repeat(129)],
    ['spaces', 'a b'],
    ['a header injection attempt', 'abc%0d%0aSet-Cookie:x=1'],
    ['quotes and angle brackets', '<script>"x"</script>'],
    ['unicode', 'idé'],
  ])('replaces an id with %s', async (_name, id) => {
    const res = await request(ctx.app).get('/api/v1/nope').set('X-Request-Id', id);
    expect(res.headers['x-request-id']).not.toBe(id);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.error.requestId).toBe(res.headers['x-request-id']);
  });

  it('puts the id on the log lines of the request', async () => {
    const res = await request(ctx.app).get('/api/v1/items').set('X-Request-Id', 'log-correlation-1');
    expect(res.status).toBe(200);
    const lines = ctx.log.lines.map((l) => JSON.parse(l)).filter((l) => l.requestId === 'log-correlation-1');
    expect(lines.some((l) => l.message === 'request completed' && l.status === 200)).toBe(true);
  });
});

describe('compression', () => {
  it('compresses large JSON but does not hold back event streams', async () => {
    const app = express();
    app.use(responseCompression());
    app.get('/events', (_req, res) => {
      res.setHeader('Content-Type', 'text/event-stream');
      res.write(`data: ${'x'.repeat(2000)}\n\n`);
      res.end();
    });
    app.get('/big', (_req, res) => {
      res.json({ data: 'y'.repeat(2000) });
    });
    const events = await request(app).get('/events').set('Accept-Encoding', 'gzip');
    expect(events.headers['content-encoding']).toBeUndefined();
    const big = await request(app).get('/big').set('Accept-Encoding', 'gzip');
    expect(big.headers['content-encoding']).toBe('gzip');
    expect(big.body.data).toHaveLength(2000);
  });

  // The compressor is installed only when a response may need it: the answers must be the same.
  const lazyApp = () => {
    const app = express();
    app.use(responseCompression());
    app.get('/small', (_req, res) => res.json({ ok: true }));
    app.get('/edge', (req, res) => res.json({ data: 'z'.repeat(Number(req.query.n)) })); // {"data":"…"} is 11 bytes more
    app.get('/head-first', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ data: 'w'.repeat(3000) }));
    });
    app.get('/streamed', (_req, res) => {
      res.setHeader('Content-Type', 'application/json');
      res.flush?.();
      res.write('{"data":"');
      res.write('v'.repeat(3000));
      res.end('"}');
    });
    app.get('/no-transform', (_req, res) => {
      res.setHeader('Cache-Control', 'no-transform');
      res.json({ data: 'u'.repeat(3000) });
    });
    app.get('/empty', (_req, res) => res.status(204).end());
    return app;
  };

  it('sends a small body as it is, with the Vary the compressor adds, and compresses from 1 kB', async () => {
    const app = lazyApp();
    const small = await request(app).get('/small').set('Accept-Encoding', 'gzip');
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(small.headers.vary).toBe('Accept-Encoding');
    expect(small.headers['content-length']).toBe(String(Buffer.byteLength('{"ok":true}')));
    expect(small.body).toEqual({ ok: true });
    const under = await request(app).get('/edge?n=1012').set('Accept-Encoding', 'gzip'); // 1023 bytes
    expect(under.headers['content-encoding']).toBeUndefined();
    expect(under.headers['content-length']).toBe('1023');
    const at = await request(app).get('/edge?n=1013').set('Accept-Encoding', 'gzip'); // 1024 bytes
    expect(at.headers['content-encoding']).toBe('gzip');
    expect(at.body.data).toHaveLength(1013);
    const head = await request(app).head('/small').set('Accept-Encoding', 'gzip');
    expect([head.headers.vary, head.headers['content-encoding']]).toEqual(['Accept-Encoding', undefined]);
    const empty = await request(app).get('/empty').set('Accept-Encoding', 'gzip');
    expect([empty.status, empty.headers['content-encoding']]).toEqual([204, undefined]);
  });

  it('compresses an answer whose headers are written first, and a streamed one (flush included)', async () => {
    const app = lazyApp();
    const headFirst = await request(app).get('/head-first').set('Accept-Encoding', 'gzip');
    expect(headFirst.headers['content-encoding']).toBe('gzip');
    expect(headFirst.body.data).toHaveLength(3000);
    const streamed = await request(app).get('/streamed').set('Accept-Encoding', 'gzip');
    expect(streamed.headers['content-encoding']).toBe('gzip');
    expect(streamed.body.data).toHaveLength(3000);
  });

  it('leaves a no-transform answer alone, and answers clients without gzip plainly, Vary included', async () => {
    const app = lazyApp();
    const kept = await request(app).get('/no-transform').set('Accept-Encoding', 'gzip');
    expect(kept.headers['content-encoding']).toBeUndefined();
    expect(kept.headers.vary).toBeUndefined();
    const plain = await request(app).get('/edge?n=5000').set('Accept-Encoding', 'identity');
    expect([plain.headers['content-encoding'], plain.headers.vary]).toEqual([undefined, 'Accept-Encoding']);
    expect(plain.body.data).toHaveLength(5000);
  });
});

describe('JSON responses', () => {
  it('answer HEAD with the headers of GET and no body', async () => {
    for (const path of ['/health', '/health/live', '/api/v1/items/00000000-0000-4000-8000-000000000000']) {
      const get = await request(ctx.app).get(path);
      const head = await request(ctx.app).head(path);
      expect(head.status, path).toBe(get.status);
      expect(head.headers['content-type'], path).toBe('application/json; charset=utf-8');
      expect(head.headers['content-length'], path).toBe(get.headers['content-length']);
      expect(Number(get.headers['content-length']), path).toBe(Buffer.byteLength(get.text));
      expect(head.text ?? '', path).toBe('');
    }
  });

  it('count bytes, not characters, in Content-Length, and send no body with 204', async () => {
    const app = express();
    leanJsonResponses(app);
    app.get('/x', (_req, res) => void res.json({ text: 'naïve – ✓' }));
    app.get('/empty', (_req, res) => void res.status(204).json({ ignored: true }));
    const res = await request(app).get('/x');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(JSON.stringify({ text: 'naïve – ✓' })));
    expect(res.body.text).toBe('naïve – ✓');
    const empty = await request(app).get('/empty');
    expect(empty.status).toBe(204);
    expect(empty.headers['content-type']).toBeUndefined();
    expect(empty.text ?? '').toBe('');
  });
});
