// End to end through the shipped nginx configuration (Debian's nginx) to the PM2 cluster.
import https from 'node:https';
import http from 'node:http';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

function call(
  port: number,
  method: string,
  urlPath: string,
  options: { body?: string | Buffer; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
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

function expectNginxJson(reply: Reply, status: number, code: string): void {
  expect(reply.status).toBe(status);
  expect(reply.headers['content-type']).toBe('application/json');
  const parsed = JSON.parse(reply.body);
  expect(parsed.error.code).toBe(code);
  expect(parsed.error.requestId).toBe(reply.headers['x-request-id']);
  expect(reply.body).not.toMatch(/<html|nginx\//i);
}

describe.skipIf(!CAN_RUN)(`through nginx to the PM2 cluster${CAN_RUN ? '' : ` [${REASON}]`}`, () => {
  let redis: TestRedisServer;
  let db: TestDatabase;
  let app: Pm2App;
  let nginx: TestNginx;
  let appPort: number;
  let httpsPort: number;

  beforeAll(async () => {
    redis = await TestRedisServer.create();
    db = await createTestDatabase();
    appPort = await freePort();
    httpsPort = await freePort();
    nginx = new TestNginx({ http: await freePort(), https: httpsPort, upstream: appPort }, '100000r/s');
    app = new Pm2App(
      `rampart-nginx-${randomUUID().slice(0, 8)}`,
      clusterEnv(appPort, redis.url, db.url, {
        HOST: '127.0.0.1',
        TRUST_PROXY: '1', // nginx is the one hop; the app listens on loopback only (HOST)
        RATE_LIMIT_LOGIN_MAX: '3',
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

  it('redirects plain HTTP to HTTPS', async () => {
    const reply = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http.get({ host: '127.0.0.1', port: nginx.ports.http, path: '/api/v1/items?page=2', headers: { host: 'api.example.com' } }, resolve).on('error', reject),
    );
    expect(reply.statusCode).toBe(301);
    expect(reply.headers.location).toBe('https://api.example.com/api/v1/items?page=2');
    reply.resume();
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
    for (const header of [
      'strict-transport-security',
      'content-security-policy',
      'x-content-type-options',
      'x-frame-options',
      'referrer-policy',
      'cross-origin-opener-policy',
      'cross-origin-resource-policy',
      'x-request-id',
    ]) {
      expect(
        names.filter((n) => n === header),
        header,
      ).toHaveLength(1);
    }
    expect(reply.headers['x-request-id']).toBe('trace-through-nginx-1');
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

  it('refuses floods at the edge with a JSON 429 (auth zone)', async () => {
    const replies = await Promise.all(
      Array.from({ length: 60 }, () =>
        call(httpsPort, 'POST', '/api/v1/auth/refresh', { body: JSON.stringify({ refreshToken: 'x' }), localAddress: '127.0.0.9' }),
      ),
    );
    const edge = replies.filter((r) => r.status === 429 && r.headers['retry-after'] === '1');
    expect(edge.length).toBeGreaterThan(0);
    expectNginxJson(edge[0]!, 429, 'rate_limited');
  });

  it('denies /metrics and /health/detailed from outside the internal network, in JSON', async () => {
    // 127.0.0.5 is a loopback address, but not one the configuration allows: it stands in for
    // a client from outside.
    for (const urlPath of ['/metrics', '/health/detailed']) {
      expectNginxJson(await call(httpsPort, 'GET', urlPath, { localAddress: '127.0.0.5' }), 403, 'forbidden');
      expect((await call(httpsPort, 'GET', urlPath)).status).toBe(200);
    }
    expect((await call(httpsPort, 'GET', '/health', { localAddress: '127.0.0.5' })).status).toBe(200);
  });

  it("answers an oversized body with nginx's JSON 413", async () => {
    const reply = await call(httpsPort, 'POST', '/api/v1/items', { body: JSON.stringify({ name: 'x'.repeat(150 * 1024) }) });
    expectNginxJson(reply, 413, 'payload_too_large');
    expect(reply.headers['strict-transport-security']).toBeDefined();
    expect(reply.headers['cache-control']).toBe('no-store');
  });

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
    expect(reply.headers['retry-after']).toBe('5');
  }, 60_000);
});
