// The process around the app: listening with the right timeouts, refusing a taken port, draining
// on shutdown, and the real entry point started as `npm start` would, with no configuration.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Env } from '../../src/config';
import { start, type RunningServer } from '../../src/server';
import { deleteRedisPrefix } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { captureLogger } from '../helpers/log-capture';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, REDIS_URL, uniqueSuffix } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');

function get(port: number, urlPath: string, agent?: http.Agent): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      })
      .on('error', reject);
  });
}

describe('start() with MIGRATE_ON_START=false', () => {
  it('leaves the database as it finds it (a release step migrates instead)', async () => {
    const testDb = DATABASE_URL ? await createTestDatabase() : undefined;
    const prefix = `rampart:test:${uniqueSuffix()}:`;
    const env: Env = { NODE_ENV: 'test', PORT: '0', REDIS_URL, DATABASE_URL: testDb?.url, SHUTDOWN_DRAIN_MS: '0', MIGRATE_ON_START: 'false' };
    const running = await start(loadConfig(env), captureLogger().logger, { keyPrefix: prefix });
    try {
      const { rows } = await running.deps.db.query<{ table: string | null }>("SELECT to_regclass('schema_migrations')::text AS table");
      expect(rows).toEqual([{ table: null }]);
      expect((await get(running.port, '/health')).status).toBe(200);
    } finally {
      await running.shutdown('test end');
      if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
      await testDb?.drop();
    }
  });
});

describe('start()', () => {
  let testDb: TestDatabase | undefined;
  let running: RunningServer;
  const prefix = `rampart:test:${uniqueSuffix()}:`;
  let env: Env;

  beforeAll(async () => {
    if (DATABASE_URL) testDb = await createTestDatabase();
    env = { NODE_ENV: 'test', PORT: '0', REDIS_URL, DATABASE_URL: testDb?.url, ENABLE_DIAGNOSTIC_ROUTES: 'true', SHUTDOWN_DRAIN_MS: '300' };
    running = await start(loadConfig(env), captureLogger().logger, { keyPrefix: prefix });
  });
  afterAll(async () => {
    await running?.shutdown('test end').catch(() => undefined);
    if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
    await testDb?.drop();
  });

  it('keeps idle connections open longer than the proxy does, and bounds slow clients and connections', () => {
    expect(running.server.keepAliveTimeout).toBe(65_000);
    expect(running.server.headersTimeout).toBe(10_000);
    expect(running.server.requestTimeout).toBe(30_000);
    expect(running.server.maxConnections).toBe(1024);
    // Checked every second rather than Node's 30 s, and a full worker closes the connection itself
    // (test/system/slow-clients.test.ts shows both).
    const server = running.server as typeof running.server & { connectionsCheckingInterval?: number; dropMaxConnection?: boolean };
    expect(server.connectionsCheckingInterval).toBe(1000);
    expect(server.dropMaxConnection).toBe(true);
  });

  it('serves health and the example route', async () => {
    expect((await get(running.port, '/health')).status).toBe(200);
    const items = await get(running.port, '/api/v1/items');
    expect(items.status).toBe(200);
    expect(JSON.parse(items.body)).toMatchObject({ items: [], page: 1, limit: 20, total: 0 });
  });

  it('refuses a port that is taken, and says why', async () => {
    const config = loadConfig({ ...env, PORT: String(running.port), SHUTDOWN_DRAIN_MS: '0' });
    await expect(start(config, captureLogger().logger, { keyPrefix: prefix })).rejects.toThrow(/EADDRINUSE/);
  });

  it('drains: health turns 503 with Connection: close, in-flight requests finish, then it stops', async () => {
    const agent = new http.Agent({ keepAlive: true });
    const slow = get(running.port, '/api/v1/_diag/slow?ms=600', agent);
    await new Promise((r) => setTimeout(r, 50));
    const done = running.shutdown('test');
    const health = await get(running.port, '/health');
    expect(health.status).toBe(503);
    expect(JSON.parse(health.body)).toEqual({ status: 'fail' });
    expect(health.headers.connection).toBe('close');
    const ready = await get(running.port, '/health/ready');
    expect(ready.status).toBe(503);
    const slowRes = await slow;
    expect(slowRes.status).toBe(200);
    expect(JSON.parse(slowRes.body)).toEqual({ sleptMs: 600 });
    expect(slowRes.headers.connection).toBe('close'); // in flight at the signal, still told to go
    await done;
    await expect(get(running.port, '/health')).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
  });
});

describe('the entry point, as `npm start` runs it', () => {
  function launch(env: Record<string, string>, preload?: string): { child: ChildProcess; output: () => string } {
    let output = '';
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(REDIS_URL|DATABASE_URL|CACHE_REDIS_URL|NODE_ENV|CI)$/.test(k)) clean[k] = v;
    const args = [...(preload ? ['--require', preload] : []), '--import', 'tsx', 'src/server.ts'];
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    return { child, output: () => output };
  }
  const exitOf = (child: ChildProcess) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  it('starts with no configuration on the embedded defaults, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const { child, output } = launch({ PORT: String(port), SHUTDOWN_DRAIN_MS: '100' });
    const exited = exitOf(child);
    let health: request.Response | undefined;
    for (let i = 0; i < 120 && !health; i++) {
      await new Promise((r) => setTimeout(r, 250));
      health = await request(`http://127.0.0.1:${port}`)
        .get('/health')
        .catch(() => undefined);
    }
    expect(health?.status, output()).toBe(200);
    const items = await request(`http://127.0.0.1:${port}`).get('/api/v1/items');
    expect(items.status).toBe(200);
    expect(output()).toMatch(/REDIS_URL not set/);
    expect(output()).toMatch(/DATABASE_URL not set/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output()).toMatch(/shutdown complete/);
  }, 60_000);

  async function launchReady(env: Record<string, string>, preload?: string) {
    const port = await freePort();
    const launched = launch({ PORT: String(port), ENABLE_DIAGNOSTIC_ROUTES: 'true', ...env }, preload);
    const exited = exitOf(launched.child);
    let up = false;
    for (let i = 0; i < 120 && !up && launched.child.exitCode === null; i++) {
      await new Promise((r) => setTimeout(r, 250));
      up =
        (
          await request(`http://127.0.0.1:${port}`)
            .get('/health')
            .catch(() => undefined)
        )?.status === 200;
    }
    expect(up, launched.output()).toBe(true);
    return { ...launched, port, exited };
  }

  it.each([
    ['an uncaught exception', 'setTimeout(() => { throw new Error("canary uncaught") }, 100)', 'uncaught exception'],
    ['an unhandled rejection', 'setTimeout(() => { Promise.reject(new Error("canary rejection")) }, 100)', 'unhandled rejection'],
  ])(
    'logs %s and leaves in order, exit code 1 (the supervisor starts a fresh process)',
    async (_name, code, logged) => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-crash-'));
      const preload = path.join(dir, 'crash.js');
      // Fires once the server is up: the trigger waits for a file the test writes.
      // Main thread only: --require preloads also run in the module loader's worker thread.
      writeFileSync(
        preload,
        `if(!require('worker_threads').isMainThread)return;const fs=require('fs');const t=setInterval(()=>{if(fs.existsSync(${JSON.stringify(path.join(dir, 'go'))})){clearInterval(t);${code}}},50);t.unref();`,
      );
      try {
        const server = await launchReady({ SHUTDOWN_DRAIN_MS: '100' }, preload);
        writeFileSync(path.join(dir, 'go'), '');
        expect(await server.exited).toBe(1);
        expect(server.output()).toContain(logged);
        expect(server.output()).toMatch(/shutdown complete/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    60_000,
  );

  it('exits non-zero at once on a second signal', async () => {
    const server = await launchReady({ SHUTDOWN_DRAIN_MS: '3000' });
    const slow = request(`http://127.0.0.1:${server.port}`)
      .get('/api/v1/_diag/slow?ms=5000')
      .then(
        () => 'answered',
        () => 'cut',
      );
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(server.output()).toMatch(/second shutdown request/);
    expect(await slow).toBe('cut');
  }, 60_000);

  it('exits non-zero when in-flight requests outlast SHUTDOWN_TIMEOUT_MS', async () => {
    const server = await launchReady({ SHUTDOWN_DRAIN_MS: '100', SHUTDOWN_TIMEOUT_MS: '500' });
    void request(`http://127.0.0.1:${server.port}`)
      .get('/api/v1/_diag/slow?ms=10000')
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(server.output()).toMatch(/did not finish within 500 ms/);
  }, 60_000);

  it('refuses to start in production without its configuration, listing every problem', async () => {
    const { child, output } = launch({ NODE_ENV: 'production', JWT_ACCESS_SECRET: 'weak' });
    expect(await exitOf(child)).toBe(1);
    for (const name of ['REDIS_URL', 'DATABASE_URL', 'JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET', 'CORS_ORIGINS', 'TRUST_PROXY']) {
      expect(output()).toContain(`${name}:`);
    }
    expect(output()).not.toContain('weak');
  }, 30_000);
});
