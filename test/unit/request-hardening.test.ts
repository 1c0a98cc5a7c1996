// The request hardening in front of the routes, each piece on its own small app: the JSON body
// parser (415, 413 after inflating, strict JSON, prototype keys dropped), the query hardening (hpp,
// operator keys removed), the security headers (as docs/security.md lists them) and the operations
// endpoints' access rule. The modules are loaded inside each test (test/helpers/fresh.ts): their
// key lists are top-level declarations.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import express, { type RequestHandler } from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { Env } from '../../src/config';
import type { SecurityEvent } from '../../src/lib/security-log';
import { PRODUCTION_OK } from '../helpers/config';
import { fresh } from '../helpers/fresh';
import { captureLogger } from '../helpers/log-capture';

const load = () =>
  fresh(async () => ({
    body: await import('../../src/middleware/body.js'),
    query: await import('../../src/middleware/query.js'),
    headers: await import('../../src/middleware/security-headers.js'),
    ops: await import('../../src/middleware/ops-access.js'),
    handler: await import('../../src/middleware/error-handler.js'),
    config: await import('../../src/config/index.js'),
  }));
type Modules = Awaited<ReturnType<typeof load>>;

/** An app that runs `middleware` and echoes what a handler then sees; errors as the app renders them. */
async function echo(middleware: (m: Modules, logger: ReturnType<typeof captureLogger>['logger']) => RequestHandler[]) {
  const m = await load();
  const log = captureLogger('debug');
  const events: SecurityEvent[] = [];
  const app = express();
  app.set('query parser', 'simple');
  app.use(...middleware(m, log.logger));
  app.all('/echo', (req, res) => {
    const body: unknown = req.body;
    res.json({
      query: req.query,
      queryPolluted: (req as unknown as { queryPolluted?: unknown }).queryPolluted ?? null,
      body: body ?? null,
      plainObject: body !== null && typeof body === 'object' ? Object.getPrototypeOf(body) === Object.prototype : null,
    });
  });
  app.use(m.handler.errorHandler(log.logger, (event) => events.push(event)));
  const warnings = () => log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 'warn');
  return { app, warnings, events };
}

/** POSTs `chunks` to /echo with Transfer-Encoding: chunked (no Content-Length), as a streaming client does. */
async function chunked(app: express.Express, type: string, chunks: string[]): Promise<{ status: number; body: unknown }> {
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/echo', headers: { 'Content-Type': type } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as unknown }));
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  } finally {
    server.close();
  }
}

describe('jsonBody', () => {
  const withBody = (limit = 64) => echo((m) => [m.body.jsonBody(limit)]);

  it('lets a request without a body through, whatever it declares', async () => {
    const { app } = await withBody();
    expect((await request(app).get('/echo')).body.body).toBeNull();
    const empty = await request(app).post('/echo').set('Content-Type', 'text/plain').set('Content-Length', '0');
    expect([empty.status, empty.body.body]).toEqual([200, null]);
  });

  it('parses a JSON body, with or without a charset', async () => {
    const { app } = await withBody();
    expect((await request(app).post('/echo').set('Content-Type', 'application/json').send('{"a":1}')).body.body).toEqual({ a: 1 });
    expect((await request(app).post('/echo').set('Content-Type', 'application/json; charset=utf-8').send('[1,2]')).body.body).toEqual([1, 2]);
  });

  it('refuses any other declared type with 415, chunked bodies included', async () => {
    const { app } = await withBody();
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/vnd.api+json', 'multipart/form-data; boundary=x']) {
      const res = await request(app).post('/echo').set('Content-Type', type).send('{"a":1}');
      expect([res.status, res.body.error?.code], type).toEqual([415, 'unsupported_media_type']);
    }
    expect((await chunked(app, 'text/plain', ['a=', '1'])).status).toBe(415);
    const undeclared = await request(app).post('/echo').set('Content-Length', '7').send('{"a":1}');
    expect(undeclared.status).toBe(415);
  });

  it('reads a chunked body (no Content-Length) as a body', async () => {
    const { app } = await withBody();
    expect(await chunked(app, 'application/json', ['{"a":', '1}'])).toEqual({ status: 200, body: expect.objectContaining({ body: { a: 1 } }) });
  });

  it('takes a body of exactly the limit and refuses one byte more, counted after inflating', async () => {
    const { app } = await withBody(20);
    const exact = `{"a":"${'x'.repeat(12)}"}`; // 20 bytes
    expect((await request(app).post('/echo').set('Content-Type', 'application/json').send(exact)).status).toBe(200);
    const over = await request(app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send(`{"a":"${'x'.repeat(13)}"}`);
    expect([over.status, over.body.error.code]).toEqual([413, 'payload_too_large']);
    // 200 bytes of JSON gzip to far fewer than 20: the limit applies to what is inflated.
    const zipped = gzipSync(`{"a":"${'x'.repeat(192)}"}`);
    expect(zipped.length).toBeLessThan(40);
    const inflated = await request(app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((b: unknown) => b as string)
      .send(zipped);
    expect([inflated.status, inflated.body.error.code]).toEqual([413, 'payload_too_large']);
    const small = await request(app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .set('Content-Encoding', 'gzip')
      .serialize((b: unknown) => b as string)
      .send(gzipSync('{"a":1}'));
    expect(small.body.body).toEqual({ a: 1 });
  });

  it('answers 400 invalid_json for broken JSON and for a bare scalar', async () => {
    const { app } = await withBody();
    for (const text of ['{"a":', '"just a string"', '42', 'true', 'null']) {
      const res = await request(app).post('/echo').set('Content-Type', 'application/json').send(text);
      expect([res.status, res.body.error.code], text).toEqual([400, 'invalid_json']);
    }
  });

  it('drops __proto__, constructor and prototype keys at any depth, and keeps the rest', async () => {
    const { app } = await withBody(1000);
    const res = await request(app)
      .post('/echo')
      .set('Content-Type', 'application/json')
      .send(
        '{"__proto__":{"p":1},"constructor":{"prototype":{"p":1}},"nested":{"prototype":1,"__proto__":{"p":1},"keep":2},"proto":3,"list":[{"constructor":1}]}',
      );
    expect(res.status).toBe(200);
    expect(res.body.body).toEqual({ nested: { keep: 2 }, proto: 3, list: [{}] });
    expect(res.body.plainObject).toBe(true);
    expect(({} as Record<string, unknown>).p).toBeUndefined();
  });
});

describe('queryHardening', () => {
  const hardened = () => echo((m, logger) => [m.body.jsonBody(1000), m.query.queryHardening(logger)]);

  it('keeps the last of repeated query parameters and sets the others aside', async () => {
    const { app } = await hardened();
    const res = await request(app).get('/echo?sort=price&sort=name&page=1');
    expect(res.body.query).toEqual({ sort: 'name', page: '1' });
    expect(res.body.queryPolluted).toEqual({ sort: ['price', 'name'] });
  });

  it('removes operator keys from the query and the body, and says so', async () => {
    const { app, warnings } = await hardened();
    const res = await request(app)
      .post('/echo?$where=1&ok=yes&a.b=2')
      .send({ email: { $ne: null }, 'x.y': 1, keep: 'me' });
    expect(res.status).toBe(200);
    expect(res.body.query).toEqual({ ok: 'yes' });
    expect(res.body.body).toEqual({ email: {}, keep: 'me' });
    expect(warnings()).toEqual([
      expect.objectContaining({ message: 'removed operator keys from request', location: 'body' }),
      expect.objectContaining({ message: 'removed operator keys from request', location: 'query' }),
    ]);
  });

  it('hardens a body without a query string, and a query string without a body', async () => {
    const { app, warnings } = await hardened();
    expect((await request(app).post('/echo').send({ $gt: 1, a: 1 })).body.body).toEqual({ a: 1 });
    expect((await request(app).get('/echo?$gt=1&a=1')).body.query).toEqual({ a: '1' });
    expect(warnings().map((w) => w.location)).toEqual(['body', 'query']);
  });

  it('leaves clean requests, and requests with nothing to harden, as they are, silently', async () => {
    const { app, warnings } = await hardened();
    expect((await request(app).get('/echo')).body).toEqual({ query: {}, queryPolluted: null, body: null, plainObject: null });
    expect((await request(app).get('/echo?')).body.query).toEqual({});
    expect((await request(app).post('/echo?a=1').send({ b: 'c' })).body).toMatchObject({ query: { a: '1' }, body: { b: 'c' } });
    expect((await request(app).post('/echo').send({})).body.body).toEqual({});
    expect(warnings()).toEqual([]);
  });
});

describe('security headers', () => {
  /** The header table of docs/security.md: one value per header (a row naming several gives one value for all, or one each). */
  function documentedHeaders(): Map<string, string> {
    const doc = readFileSync(path.join(__dirname, '../../docs/security.md'), 'utf8').split('## Response headers')[1]!.split('\n## ')[0]!;
    const headers = new Map<string, string>();
    for (const [, names, values] of doc.matchAll(/^\| (`[^|]+) \| ([^|]+) \|/gm)) {
      const nameList = [...names!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      const valueList = [...values!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      nameList.forEach((name, i) => headers.set(name, valueList[valueList.length === 1 ? 0 : i]!));
    }
    return headers;
  }
  const normalise = (value: string) => value.replace(/;\s*/g, '; ');

  it('are the set docs/security.md lists, with its values', async () => {
    const { headers } = await load();
    const computed = headers.computeSecurityHeaders();
    const documented = documentedHeaders();
    expect(documented.size).toBeGreaterThanOrEqual(12);
    expect(new Map(computed.map(([name, value]) => [name, normalise(value)]))).toEqual(
      new Map([...documented].map(([name, value]) => [name, normalise(value)])),
    );
  });

  it('forbid framing, sniffing, referrers and loading anything', async () => {
    const computed = new Map((await load()).headers.computeSecurityHeaders());
    expect(computed.get('Content-Security-Policy')).toBe("default-src 'none';frame-ancestors 'none';base-uri 'none';form-action 'none'");
    expect(computed.get('Strict-Transport-Security')).toBe('max-age=31536000; includeSubDomains');
    expect(computed.get('X-Frame-Options')).toBe('DENY');
    expect(computed.has('X-Powered-By')).toBe(false);
  });
});

describe('opsAccess', () => {
  const TOKEN = 'ops-'.repeat(10);

  async function guarded(env: Env) {
    return echo((m) => [m.ops.opsAccess(m.config.loadConfig(env))]);
  }
  const production = (extra: Env = {}) => guarded({ ...PRODUCTION_OK, OPS_TOKEN: TOKEN, ...extra });

  it('is open outside production', async () => {
    const { app } = await guarded({ OPS_ALLOWED_ADDRESSES: '10.0.0.0/8' });
    expect((await request(app).get('/echo')).status).toBe(200);
  });

  it('opens to an allowed address (loopback by default), token or not', async () => {
    const { app } = await production();
    expect((await request(app).get('/echo')).status).toBe(200);
    expect((await request(app).get('/echo').set('Authorization', 'Bearer wrong')).status).toBe(200);
  });

  it('refuses any other address without the token, saying why', async () => {
    const { app, events } = await production({ OPS_ALLOWED_ADDRESSES: '10.0.0.0/8' });
    const res = await request(app).get('/echo');
    expect([res.status, res.body.error.code]).toEqual([403, 'forbidden']);
    for (const header of [`Basic ${TOKEN}`, `Bearer ${TOKEN} extra`, `xBearer ${TOKEN}`, `Bearer`, TOKEN]) {
      expect((await request(app).get('/echo').set('Authorization', header)).status, header).toBe(403);
    }
    expect(events.map((e) => e.reason)).toEqual(Array(6).fill('address not allowed, no ops token'));
  });

  it('opens to the exact token from anywhere, the scheme in any case', async () => {
    const { app } = await production({ OPS_ALLOWED_ADDRESSES: '10.0.0.0/8' });
    for (const header of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER   ${TOKEN}`]) {
      expect((await request(app).get('/echo').set('Authorization', header)).status, header).toBe(200);
    }
  });

  it('refuses a wrong token of any length', async () => {
    const { app, events } = await production({ OPS_ALLOWED_ADDRESSES: '10.0.0.0/8' });
    for (const wrong of [`${TOKEN.slice(1)}x`, TOKEN.slice(1), `${TOKEN}x`, TOKEN.toUpperCase()]) {
      expect((await request(app).get('/echo').set('Authorization', `Bearer ${wrong}`)).status, wrong).toBe(403);
    }
    expect(events.map((e) => e.reason)).toEqual(Array(4).fill('wrong ops token'));
  });

  it('takes no token at all when none is configured', async () => {
    const { app } = await guarded({ ...PRODUCTION_OK, OPS_ALLOWED_ADDRESSES: '10.0.0.0/8' });
    expect((await request(app).get('/echo').set('Authorization', 'Bearer undefined')).status).toBe(403);
  });
});
