// End to end through the shipped nginx configuration (Debian's nginx) to the PM2 cluster.
import https from 'node:https';
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeSecurityHeaders } from '../../src/middleware/security-headers';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { NGINX, TestNginx } from '../helpers/nginx';
import { clusterEnv, Pm2App } from '../helpers/pm2';
import { freePort, HAS_REDIS_SERVER, TestRedisServer } from '../helpers/redis-server';
import { DATABASE_URL } from '../helpers/services';

const CAN_RUN = Boolean(NGINX) && Boolean(DATABASE_URL) && HAS_REDIS_SERVER;
const REASON = !NGINX ? 'skipped: nginx not installed (Debian package nginx)' : 'skipped: needs DATABASE_URL and redis-server';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  raw: string[];
  body: string;
}

interface CallOptions {
  body?: string | Buffer;
  headers?: Record<string, string>;
  localAddress?: string;
  /** Plain HTTP instead of TLS (to nginx's port 80, to its TLS port, or to the app itself). */
  plain?: boolean;
}

function call(port: number, method: string, urlPath: string, options: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = options.plain ? http.request : https.request;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent: false,
        rejectUnauthorized: false,
        localAddress: options.localAddress,
        headers: { ...(options.body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) } : {}), ...options.headers },
      },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, raw: res.rawHeaders, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One request over HTTP/2 (what browsers speak to nginx), with the same shape of reply. */
function call2(port: number, method: string, urlPath: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', reject);
    const stream = session.request({
      ':method': method,
      ':path': urlPath,
      ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
    });
    let headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader = {};
    let text = '';
    stream.on('response', (h) => (headers = h));
    stream.on('data', (c: Buffer) => (text += c.toString()));
    stream.on('end', () => {
      session.close();
      const raw = Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, String(v)]));
      resolve({ status: Number(headers[':status']), headers, raw, body: text });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

/** The security headers the app sends (helmet's list, computed as the app computes it). */
const APP_HEADERS = computeSecurityHeaders().map(([name, value]) => [name.toLowerCase(), value] as const);

/**
 * An answer nginx made itself carries the app's security headers, each once and with the app's
 * value; Strict-Transport-Security only over TLS.
 */
function expectOwnHeaders(reply: Reply, overTls: boolean): void {
  const names = reply.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  for (const [name, value] of APP_HEADERS) {
    if (name === 'strict-transport-security' && !overTls) {
      expect(reply.headers[name], `${name} on plain HTTP`).toBeUndefined();
      continue;
    }
    expect(
      names.filter((n) => n === name),
      name,
    ).toHaveLength(1);
    expect(reply.headers[name], name).toBe(value);
  }
  expect(names.filter((n) => n === 'x-request-id')).toHaveLength(1);
  expect(reply.headers['cache-control']).toBe('no-store');
}

/** One of nginx's own JSON errors: exact status and code, the app's envelope and headers. */
function expectNginxJson(reply: Reply, status: number, code: string, overTls = true): void {
  expect(reply.status).toBe(status);
  expect(reply.headers['content-type']).toBe('application/json; charset=utf-8');
  const parsed = JSON.parse(reply.body);
  expect(Object.keys(parsed)).toEqual(['error']);
  expect(parsed.error.code).toBe(code);
  expect(typeof parsed.error.message).toBe('string');
  expect(parsed.error.requestId).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
  expect(parsed.error.requestId).toBe(reply.headers['x-request-id']);
  expect(reply.body).not.toMatch(/<html|nginx\//i);
  expectOwnHeaders(reply, overTls);
}

/** Express serves these as `p` too: routing is case-insensitive, one trailing slash is ignored, and a fragment is cut off. */
function appSpellings(p: string): string[] {
  const capitalised = p.replace(/\/([a-z])/g, (_, c: string) => `/${c.toUpperCase()}`);
  return [p, p.toUpperCase(), capitalised, `${p}/`, `${p.toUpperCase()}/`, `${p}?x=1`, `${p}#x`];
}

/** nginx normalises these to `p` before it matches a location (decoding, dot segments, merged slashes). */
function normalisedSpellings(p: string): string[] {
  const hex = (c: string) => `%${c.charCodeAt(0).toString(16)}`;
  const inner = p.indexOf('/', 1);
  return [
    `/${hex(p[1]!)}${p.slice(2)}`,
    `/${hex(p[1]!.toUpperCase())}${p.slice(2)}`,
    `/${p}`,
    `/.${p}`,
    `/x/..${p}`,
    `/%2e${p}`,
    ...(inner > 0 ? [`${p.slice(0, inner)}%2F${p.slice(inner + 1)}`, `${p.slice(0, inner)}/${p.slice(inner)}`] : []),
  ];
}

/** A request id of the client's: 8 random characters first, then what it is for. */
const traceId = (label: string) => `${randomUUID().slice(0, 8)}-${label}`;

interface OpenApi {
  paths: Record<string, Record<string, { security?: Record<string, unknown>[] }>>;
}

describe.skipIf(!CAN_RUN)(`through nginx to the PM2 cluster${CAN_RUN ? '' : ` [${REASON}]`}`, () => {
  let redis: TestRedisServer;
  let db: TestDatabase;
  let app: Pm2App;
  let nginx: TestNginx;
  let appPort: number;
  let httpsPort: number;
  let httpPort: number;
  /** The app's own routes, from the OpenAPI document it serves: [method, path with parameters filled in, needs the ops guard]. */
  let routes: [string, string, boolean][];

  /**
   * Everything the app has logged (PM2's log files): its access log names each request's id (the
   * development format by its first 8 characters, hence ids that begin with 8 random ones).
   */
  const appLog = () => {
    const dir = path.join(app.home, 'logs');
    return readdirSync(dir)
      .map((f) => readFileSync(path.join(dir, f), 'utf8'))
      .join('\n');
  };

  /**
   * The requests with these ids were answered by nginx and never reached the app: nginx logged
   * each without an upstream, and the app's access log, which has caught up with a request sent
   * after them, names none of them.
   */
  const expectNeverForwarded = async (ids: string[]) => {
    const entries = nginx.accessLog();
    for (const id of ids) {
      const entry = entries.find((e) => e.requestId === id);
      expect(entry, id).toBeDefined();
      expect(entry!.upstreamTime, id).toBe('');
    }
    const logged = (log: string, id: string) => log.includes(`[${id.slice(0, 8)}]`);
    const control = traceId('control');
    expect((await call(httpsPort, 'GET', '/api/v1/items', { headers: { 'x-request-id': control } })).status).toBe(200);
    const deadline = Date.now() + 15_000;
    while (!logged(appLog(), control) && Date.now() < deadline) await sleep(200);
    const log = appLog();
    expect(logged(log, control)).toBe(true);
    expect(ids.filter((id) => logged(log, id))).toEqual([]);
  };

  beforeAll(async () => {
    redis = await TestRedisServer.create();
    db = await createTestDatabase();
    appPort = await freePort();
    httpsPort = await freePort();
    httpPort = await freePort();
    nginx = new TestNginx({ http: httpPort, https: httpsPort, upstream: appPort }, '100000r/s');
    app = new Pm2App(
      `rampart-nginx-${randomUUID().slice(0, 8)}`,
      clusterEnv(appPort, redis.url, db.url, {
        HOST: '127.0.0.1',
        TRUST_PROXY: '1', // nginx is the one hop; the app listens on loopback only (HOST)
        RATE_LIMIT_LOGIN_MAX: '3',
        LOG_LEVEL: 'info', // the access log shows which requests reached the app
      }),
    );
    app.start();
    await nginx.start();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const ok = await call(httpsPort, 'GET', '/health/ready').then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok && app.instances().filter((i) => i.status === 'online').length === 2) break;
      await sleep(300);
    }
    const document = JSON.parse((await call(httpsPort, 'GET', '/openapi.json')).body) as OpenApi;
    routes = Object.entries(document.paths).flatMap(([template, operations]) =>
      Object.entries(operations).map(
        ([method, operation]) =>
          [method.toUpperCase(), template.replace(/\{\w+\}/g, 'x'), (operation.security ?? []).some((s) => 'opsToken' in s)] as [string, string, boolean],
      ),
    );
  }, 120_000);

  afterAll(async () => {
    await nginx?.stop();
    app?.kill();
    await redis?.stop();
    await db?.drop();
  }, 60_000);

  it('passes nginx -t', () => {
    const [code, output] = nginx.test();
    expect(output).toMatch(/syntax is ok/);
    expect(code).toBe(0);
  });

  it('refuses plain HTTP under /api/ with 403 https_required, in every spelling, never forwarded nor redirected', async () => {
    const api = routes.filter(([, p]) => p.startsWith('/api/'));
    expect(api.length).toBeGreaterThan(10);
    const requests: [string, string][] = api.flatMap(([method, p]) =>
      [...appSpellings(p), ...normalisedSpellings(p)].map((s) => [method, s] as [string, string]),
    );
    // The prefix itself, and a path that is under /api/ as sent though not once normalised.
    requests.push(
      ['GET', '/api'],
      ['GET', '/API/'],
      ['GET', '/api/../health'],
      ['GET', '/%61pi/v1/items'],
      ['GET', '//api/v1/items'],
      ['GET', '/./api/v1/items'],
    );
    const ids: string[] = [];
    for (const [i, [method, spelling]] of requests.entries()) {
      const id = traceId(`plain-${i}`);
      ids.push(id);
      const body = method === 'POST' || method === 'PATCH' ? JSON.stringify({ email: 'a@example.com', password: 'a password' }) : undefined;
      // What a client configured with http:// sends: its token, in the clear.
      const reply = await call(httpPort, method, spelling, {
        plain: true,
        body,
        headers: { 'x-request-id': id, authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.x' },
      });
      expect(reply.status, `${method} ${spelling}`).toBe(403);
      expect(reply.headers.location, spelling).toBeUndefined();
      expectNginxJson(reply, 403, 'https_required', false);
      expect(JSON.parse(reply.body).error.requestId).toBe(id);
    }
    // Without a usable id of the client's, nginx's own (32 hex characters) in the body and the header.
    const own = await call(httpPort, 'GET', '/api/v1/items', { plain: true, headers: { 'x-request-id': 'not a valid id!' } });
    expectNginxJson(own, 403, 'https_required', false);
    expect(own.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
    await expectNeverForwarded(ids);
  }, 120_000);

  it('redirects other plain-HTTP paths to HTTPS, with the security headers and without forwarding', async () => {
    const others = [...routes.filter(([, p]) => !p.startsWith('/api/')).map(([, p]) => p), '/', '/apix', '/health?probe=1', '/Metrics/'];
    expect(others).toContain('/metrics');
    const ids: string[] = [];
    for (const p of others) {
      const id = traceId('redirect');
      ids.push(id);
      const reply = await call(httpPort, 'GET', p, { plain: true, headers: { host: 'api.example.com', 'x-request-id': id } });
      expect(reply.status, p).toBe(301);
      expect(reply.headers.location).toBe(`https://api.example.com${p}`);
      expect(reply.headers['x-request-id']).toBe(id);
      expectOwnHeaders(reply, false);
    }
    await expectNeverForwarded(ids);
  });

  it('answers plain HTTP sent to the TLS port as port 80 does', async () => {
    const id = traceId('tls-port');
    const refused = await call(httpsPort, 'GET', '/API/v1/items', { plain: true, headers: { 'x-request-id': id } });
    expectNginxJson(refused, 403, 'https_required', false);
    const moved = await call(httpsPort, 'GET', '/health', { plain: true, headers: { host: 'api.example.com' } });
    expect(moved.status).toBe(301);
    expect(moved.headers.location).toBe('https://api.example.com/health');
    expectOwnHeaders(moved, false);
    await expectNeverForwarded([id]);
  });

  it('speaks TLS 1.2 and 1.3 only', async () => {
    const handshake = (minVersion: tls.SecureVersion, maxVersion: tls.SecureVersion) =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port: httpsPort, minVersion, maxVersion, rejectUnauthorized: false }, () => {
          resolve(socket.getProtocol() ?? 'none');
          socket.end();
        });
        socket.on('error', () => resolve('refused'));
      });
    expect(await handshake('TLSv1.3', 'TLSv1.3')).toBe('TLSv1.3');
    expect(await handshake('TLSv1.2', 'TLSv1.2')).toBe('TLSv1.2');
    expect(await handshake('TLSv1', 'TLSv1.1')).toBe('refused');
  });

  it('carries each security header exactly once, no nginx version, the request id through', async () => {
    const reply = await call(httpsPort, 'GET', '/api/v1/items', { headers: { 'x-request-id': 'trace-through-nginx-1' } });
    expect(reply.status).toBe(200);
    const names = reply.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    for (const [header, value] of [...APP_HEADERS, ['x-request-id', 'trace-through-nginx-1'] as const]) {
      expect(
        names.filter((n) => n === header),
        header,
      ).toHaveLength(1);
      expect(reply.headers[header], header).toBe(value);
    }
    expect(reply.headers.server).toBe('nginx');
    expect(reply.headers['content-encoding']).toBeUndefined();
  });

  it('compresses once: the app gzips, nginx passes it through', async () => {
    const reply = await call(httpsPort, 'GET', '/api/v1/items?limit=100&tag=' + 'x'.repeat(40), { headers: { 'accept-encoding': 'gzip' } });
    expect(reply.status).toBe(200);
    const names = reply.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    expect(names.filter((n) => n === 'content-encoding').length).toBeLessThanOrEqual(1);
  });

  it('does not let a spoofed X-Forwarded-For move the client into a fresh rate-limit bucket', async () => {
    const whoami = JSON.parse((await call(httpsPort, 'GET', '/api/v1/_diag/whoami', { headers: { 'x-forwarded-for': '6.6.6.6' } })).body);
    expect(whoami.ip).toBe('127.0.0.1');
    const email = `edge-${randomUUID()}@example.com`;
    const statuses = [];
    for (let i = 0; i < 5; i++) {
      const reply = await call(httpsPort, 'POST', '/api/v1/auth/login', {
        body: JSON.stringify({ email, password: 'wrong password' }),
        headers: { 'x-forwarded-for': `203.0.113.${i + 1}`, 'x-real-ip': `198.51.100.${i + 1}` },
      });
      statuses.push(reply.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });

  it('refuses floods at the edge with a JSON 429 (auth zone), in every spelling the app serves as /api/v1/auth/', async () => {
    // Each spelling from an address of its own, so that each fills the auth zone by itself (the
    // general zone is raised for this file: only the auth zone can answer 429 with Retry-After: 1).
    for (const [i, spelling] of ['/api/v1/auth/refresh', '/API/V1/AUTH/refresh', '/Api/v1/Auth/Refresh/'].entries()) {
      const replies = await Promise.all(
        Array.from({ length: 60 }, () => call(httpsPort, 'POST', spelling, { body: JSON.stringify({ refreshToken: 'x' }), localAddress: `127.0.0.${20 + i}` })),
      );
      // The app answers the others itself (401 invalid_grant, then its own 429 with its window).
      expect(replies.some((r) => r.status === 401)).toBe(true);
      const edge = replies.filter((r) => r.status === 429 && r.headers['retry-after'] === '1');
      expect(edge.length, spelling).toBeGreaterThan(0);
      expectNginxJson(edge[0]!, 429, 'rate_limited');
    }
  });

  it('refuses every spelling of /metrics and /health/detailed from outside the internal network, in JSON, without forwarding', async () => {
    const guarded = routes.filter(([, , ops]) => ops).map(([, p]) => p);
    expect(guarded.sort()).toEqual(['/health/detailed', '/metrics']);
    const ids: string[] = [];
    for (const p of guarded) {
      // The app itself serves all of these as the guarded path (outside production it answers
      // anyone): nginx's rule must hold for each.
      for (const spelling of appSpellings(p)) expect((await call(appPort, 'GET', spelling, { plain: true })).status, spelling).toBe(200);
      for (const spelling of [...appSpellings(p), ...normalisedSpellings(p)]) {
        // 127.0.0.5 is a loopback address, but not one the configuration allows: it stands in for
        // a client from outside. nginx decides by address alone; a token changes nothing.
        const id = traceId('ops');
        ids.push(id);
        const refused = await call(httpsPort, 'GET', spelling, { localAddress: '127.0.0.5', headers: { 'x-request-id': id, authorization: 'Bearer token' } });
        expectNginxJson(refused, 403, 'forbidden');
        // From an allowed address nginx forwards the path as sent: the app answers as it would directly.
        const direct = await call(appPort, 'GET', spelling, { plain: true });
        expect((await call(httpsPort, 'GET', spelling)).status, spelling).toBe(direct.status);
      }
    }
    const entries = nginx.accessLog();
    for (const id of ids) expect(entries.find((e) => e.requestId === id)?.upstreamTime, id).toBe('');
    expect((await call(httpsPort, 'GET', '/health', { localAddress: '127.0.0.5' })).status).toBe(200);
    expect((await call(httpsPort, 'GET', '/Health/Live/', { localAddress: '127.0.0.5' })).status).toBe(200);
  }, 60_000);

  it("answers an oversized body with nginx's JSON 413, over HTTP/1.1 and HTTP/2", async () => {
    const body = JSON.stringify({ name: 'x'.repeat(150 * 1024) });
    expectNginxJson(await call(httpsPort, 'POST', '/api/v1/items', { body }), 413, 'payload_too_large');
    expectNginxJson(await call2(httpsPort, 'POST', '/api/v1/items', body), 413, 'payload_too_large');
  });

  it("answers requests it cannot parse with nginx's JSON 400 and 414", async () => {
    expectNginxJson(await call(httpsPort, 'GET', '/../metrics'), 400, 'bad_request');
    expectNginxJson(await call(httpsPort, 'GET', `/api/v1/items?tag=${'x'.repeat(9000)}`), 414, 'bad_request');
    expectNginxJson(await call(httpPort, 'GET', '/../api/v1/items', { plain: true }), 400, 'bad_request', false);
  });

  it('answers with JSON 504 when the app does not answer in time', async () => {
    // A second nginx in front of the same app, waiting 1 s instead of 35 s for an answer.
    const impatient = new TestNginx({ http: await freePort(), https: await freePort(), upstream: appPort }, undefined, { readTimeout: '1s' });
    try {
      await impatient.start();
      const reply = await call(impatient.ports.https, 'GET', '/api/v1/_diag/slow?ms=4000');
      expectNginxJson(reply, 504, 'service_unavailable');
      expect(JSON.parse(reply.body).error.message).toBe('The service did not answer in time');
      expect(reply.headers['retry-after']).toBe('5');
    } finally {
      await impatient.stop();
    }
  }, 30_000);

  it('reloads the cluster behind nginx under load without losing a request', async () => {
    await call(httpsPort, 'GET', '/api/v1/items');
    const load = autocannon({
      url: `https://127.0.0.1:${httpsPort}/api/v1/items`,
      connections: 16,
      duration: 12,
      tlsOptions: { rejectUnauthorized: false },
    });
    await sleep(1500);
    app.reload();
    const result = await load;
    console.log(`pm2 reload behind nginx: ${result.requests.total} requests, ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`);
    expect(result.requests.total).toBeGreaterThan(500);
    expect(result.errors).toBe(0);
    expect(result.timeouts).toBe(0);
    expect(result.non2xx).toBe(0);
  }, 60_000);

  it('answers with JSON 502 when the app is down', async () => {
    app.stop();
    const reply = await call(httpsPort, 'GET', '/api/v1/items');
    expectNginxJson(reply, 502, 'service_unavailable');
    expect(JSON.parse(reply.body).error.message).toBe('Service temporarily unavailable');
    expect(reply.headers['retry-after']).toBe('5');
  }, 60_000);
});
