// The operations listener (OPS_PORT): the same process serves /health* and /metrics on a second
// port, with the access rules they have on the API port, nothing else; it drains and closes with
// the API port; and it answers liveness at once while the API port is flooded past capacity.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Env } from '../../src/config';
import { start, type RunningServer } from '../../src/server';
import { deleteRedisPrefix } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { captureLogger } from '../helpers/log-capture';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, REDIS_URL, uniqueSuffix } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a connection of its own (as a probe makes it). */
function get(port: number, urlPath: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, headers, agent: false, timeout: 15_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`${urlPath}: no answer in 15 s`)));
    req.on('error', reject);
    req.end();
  });
}

const OPERATIONS = ['/health', '/health/live', '/health/ready', '/health/detailed', '/metrics'];

describe('the operations listener', () => {
  let testDb: TestDatabase | undefined;
  let running: RunningServer;
  const prefix = `rampart:test:${uniqueSuffix()}:`;

  beforeAll(async () => {
    if (DATABASE_URL) testDb = await createTestDatabase();
    const env: Env = {
      NODE_ENV: 'test',
      PORT: '0',
      OPS_PORT: '0',
      REDIS_URL,
      DATABASE_URL: testDb?.url,
      ENABLE_DIAGNOSTIC_ROUTES: 'true',
      API_DOCS: 'true',
      SHUTDOWN_DRAIN_MS: '400',
    };
    running = await start(loadConfig(env), captureLogger().logger, { keyPrefix: prefix });
  });
  afterAll(async () => {
    await running?.shutdown('test end').catch(() => undefined);
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
    await testDb?.drop();
  });

  it('is off unless OPS_PORT is set, and cannot share the API port', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).opsPort).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'test', OPS_PORT: '9102' }).opsPort).toBe(9102);
    expect(() => loadConfig({ NODE_ENV: 'test', PORT: '3000', OPS_PORT: '3000' })).toThrow(/OPS_PORT: must differ from PORT/);
  });

  it('serves exactly the operations endpoints: each API path is 404 there, as on the API port it is not', async () => {
    const ops = running.ops!.port;
    expect(ops).not.toBe(running.port);
    for (const p of OPERATIONS) {
      const res = await get(ops, p);
      expect(res.status, p).toBe(200);
      expect(res.headers['cache-control'], p).toBe('no-store');
    }
    expect(JSON.parse((await get(ops, '/health/live')).body)).toEqual({ status: 'pass' });
    expect((await get(ops, '/metrics')).body).toMatch(/^rampart_shed_total\{reason="in_flight"\} \d+$/m);
    // Unknown methods on a known path: 405 with Allow, as on the API port.
    const post = await get(ops, '/health', {}, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    for (const p of ['/api/v1/items', '/api/v1/_diag/slow?ms=0', '/openapi.json', '/api/docs', '/']) {
      const res = await get(ops, p);
      expect(res.status, p).toBe(404);
      expect(JSON.parse(res.body).error.code, p).toBe('not_found');
    }
    for (const p of ['/api/v1/items', '/openapi.json', ...OPERATIONS]) expect((await get(running.port, p)).status, p).toBe(200);
  });

  it('refuses to start when its port is taken, leaving the API port free', async () => {
    const apiPort = await freePort();
    const config = loadConfig({ NODE_ENV: 'test', PORT: String(apiPort), OPS_PORT: String(running.ops!.port), REDIS_URL, DATABASE_URL: testDb?.url });
    await expect(start(config, captureLogger().logger, { keyPrefix: prefix })).rejects.toThrow(/EADDRINUSE/);
    await expect(get(apiPort, '/health')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('drains with the API port (liveness 200, /health 503, Connection: close), then closes with it', async () => {
    const ops = running.ops!.port;
    const done = running.shutdown('test');
    const health = await get(ops, '/health');
    expect(health.status).toBe(503);
    expect(health.headers.connection).toBe('close');
    expect((await get(ops, '/health/live')).status).toBe(200);
    expect((await get(ops, '/health/ready')).status).toBe(503);
    await done;
    await expect(get(ops, '/health/live')).rejects.toThrow(/ECONNREFUSED/);
    await expect(get(running.port, '/health/live')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('the operations listener in production', () => {
  let testDb: TestDatabase | undefined;
  let running: RunningServer | undefined;
  const prefix = `rampart:test:${uniqueSuffix()}:`;
  const OPS_TOKEN = 'ops-token-0123456789-0123456789-xyz';

  beforeAll(async () => {
    if (!REDIS_URL || !DATABASE_URL) return;
    testDb = await createTestDatabase();
    const env: Env = {
      NODE_ENV: 'production',
      PORT: '0',
      OPS_PORT: '0',
      REDIS_URL,
      DATABASE_URL: testDb.url,
      JWT_ACCESS_SECRET: 'a'.repeat(32),
      JWT_REFRESH_SECRET: 'b'.repeat(32),
      CORS_ORIGINS: '',
      // The API port believes X-Forwarded-For from loopback (a local proxy); only 10.0.0.0/8 may
      // read the guarded endpoints without the token.
      TRUST_PROXY: 'loopback',
      OPS_ALLOWED_ADDRESSES: '10.0.0.0/8',
      OPS_TOKEN,
      SHUTDOWN_DRAIN_MS: '0',
      LOG_LEVEL: 'error',
    };
    running = await start(loadConfig(env), captureLogger('error').logger, { keyPrefix: prefix });
  });
  afterAll(async () => {
    await running?.shutdown('test end').catch(() => undefined);
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
    await testDb?.drop();
  });

  it.skipIf(!REDIS_URL || !DATABASE_URL)('guards /metrics and /health/detailed as the API port does, and believes no X-Forwarded-For', async () => {
    const { port } = running!;
    const ops = running!.ops!.port;
    const from10 = { 'X-Forwarded-For': '10.1.2.3' };
    for (const p of ['/metrics', '/health/detailed']) {
      // API port: the trusted proxy says the client is 10.1.2.3, which is allowed.
      expect((await get(port, p, from10)).status, p).toBe(200);
      expect((await get(port, p)).status, p).toBe(403);
      // Operations port: nobody proxies to it, so the header is the client's own claim; the
      // connection's address (loopback) is not on the list.
      const spoofed = await get(ops, p, from10);
      expect(spoofed.status, p).toBe(403);
      expect(JSON.parse(spoofed.body).error.code).toBe('forbidden');
      expect((await get(ops, p, { authorization: `Bearer ${OPS_TOKEN}` })).status, p).toBe(200);
      expect((await get(ops, p, { authorization: 'Bearer wrong-token-0123456789-0123456789' })).status, p).toBe(403);
    }
    // The probes' endpoints are public on both.
    for (const p of ['/health', '/health/live', '/health/ready']) expect((await get(ops, p)).status, p).toBe(200);
  });
});

/** Latencies of probes on fresh connections, every intervalMs until stopped. */
function probeEvery(port: number, urlPath: string, intervalMs: number): { stop(): Promise<{ ms: number[]; statuses: number[]; failures: number }> } {
  const ms: number[] = [];
  const statuses: number[] = [];
  let failures = 0;
  const pending: Promise<void>[] = [];
  const timer = setInterval(() => {
    const t0 = performance.now();
    pending.push(
      get(port, urlPath).then(
        (res) => {
          ms.push(performance.now() - t0);
          statuses.push(res.status);
        },
        () => {
          failures += 1;
        },
      ),
    );
  }, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(pending);
      return { ms, statuses, failures };
    },
  };
}

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] ?? NaN;

describe('liveness on the operations listener while the API port is flooded', () => {
  let server: ChildProcess | undefined;
  let load: ChildProcess | undefined;
  let testDb: TestDatabase | undefined;
  const prefix = `rampart:test:${uniqueSuffix()}:`;

  afterAll(async () => {
    if (load?.exitCode === null) load.kill('SIGKILL');
    if (server?.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      server.kill('SIGTERM');
      await exited;
    }
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
    await testDb?.drop();
  });

  it('answers /health/live within 2 s on the operations port while the API port sheds', async () => {
    if (DATABASE_URL) testDb = await createTestDatabase();
    const [port, opsPort] = [await freePort(), await freePort()];
    // The real entry point, in a process of its own, so that the probes' timing is not the test's
    // event loop. Requests hold 100 ms and 32 are served at once: 1000 connections are 30 times
    // what it serves, and every refusal closes its connection, so the client reconnects constantly.
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      NODE_ENV: 'test',
      LOG_LEVEL: 'error',
      PORT: String(port),
      OPS_PORT: String(opsPort),
      ENABLE_DIAGNOSTIC_ROUTES: 'true',
      RATE_LIMIT_API_MAX: '1000000000',
      SHED_MAX_IN_FLIGHT: '32',
      REDIS_KEY_PREFIX: prefix,
      ...(REDIS_URL ? { REDIS_URL } : {}),
      ...(testDb ? { DATABASE_URL: testDb.url } : {}),
    };
    let output = '';
    server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout!.on('data', (d) => (output += d));
    server.stderr!.on('data', (d) => (output += d));
    let up = false;
    for (let i = 0; i < 120 && !up && server.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 250));
      up = (await get(opsPort, '/health').catch(() => undefined))?.status === 200;
    }
    expect(up, output).toBe(true);

    const autocannon = path.join(ROOT, 'node_modules/autocannon/autocannon.js');
    const url = `http://127.0.0.1:${port}/api/v1/_diag/slow?ms=100`;
    load = spawn(process.execPath, [autocannon, '-c', '1000', '-d', '12', '--json', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let report = '';
    load.stdout!.on('data', (d) => (report += d));
    const loadDone = new Promise<void>((resolve) => load!.once('exit', () => resolve()));
    await new Promise((r) => setTimeout(r, 3000)); // connections opened, refusals under way
    const ops = probeEvery(opsPort, '/health/live', 200);
    const api = probeEvery(port, '/health/live', 200);
    await new Promise((r) => setTimeout(r, 7000));
    const [onOps, onApi] = await Promise.all([ops.stop(), api.stop()]);
    await loadDone;
    const shed = Number(/^rampart_shed_total\{reason="in_flight"\} (\d+)$/m.exec((await get(opsPort, '/metrics')).body)?.[1]);
    const summary = JSON.parse(report) as { requests: { total: number }; non2xx: number; errors: number };

    const figures = (r: typeof onOps) =>
      `${r.ms.length} answered, ${r.failures} failed, p50 ${Math.round(percentile(r.ms, 50))} ms, max ${Math.round(Math.max(...r.ms))} ms`;
    process.stdout.write(
      `flood: ${summary.requests.total} requests, ${summary.non2xx} non-2xx, ${summary.errors} errors, ${shed} shed for in_flight\n` +
        `  /health/live on the operations port: ${figures(onOps)}\n  /health/live on the API port: ${figures(onApi)}\n`,
    );
    // The API port was past its capacity: admission control refused requests.
    expect(shed).toBeGreaterThan(100);
    expect(onOps.failures).toBe(0);
    expect(onOps.statuses.length).toBeGreaterThan(20);
    expect(onOps.statuses.every((s) => s === 200)).toBe(true);
    // A generous ceiling for a shared machine; the figures above are what it measured.
    expect(Math.max(...onOps.ms)).toBeLessThan(2000);
  }, 90_000);
});
