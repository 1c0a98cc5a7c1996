// monitoring/ against the real thing: Debian's Prometheus server scrapes the app under real PM2
// cluster mode (production mode, with the ops token), and Debian's node, Redis and PostgreSQL
// exporters, with the shipped rules. After load, every recording rule and every dashboard query
// returns data; an outage of the app's Redis fires the dependency alerts, which clear once it is
// back. The test's copy of the configuration only changes the targets, shortens the intervals
// (scrape 3 s, evaluation 2 s) and every `for` (4 s). Bounded in time; stops what it started.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { concrete, dashboardQueries, PROMETHEUS_DIR, ruleFiles, rules } from '../helpers/monitoring';
import { clusterEnv, fresh, Pm2App } from '../helpers/pm2';
import { freePort, HAS_REDIS_SERVER, TestRedisServer } from '../helpers/redis-server';
import { DATABASE_URL, toolAvailable } from '../helpers/services';

const TOOLS = ['prometheus', 'prometheus-node-exporter', 'prometheus-redis-exporter', 'prometheus-postgres-exporter'];
const HAS_TOOLS = toolAvailable(
  TOOLS.every((t) => spawnSync(t, ['--version']).status === 0),
  'prometheus and its exporters (Debian packages prometheus, prometheus-node-exporter, prometheus-redis-exporter, prometheus-postgres-exporter)',
);
const CAN_RUN = Boolean(DATABASE_URL) && HAS_REDIS_SERVER && HAS_TOOLS;
const REASON = 'skipped: needs real PostgreSQL (DATABASE_URL), redis-server, and Debian prometheus with its node, Redis and PostgreSQL exporters';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  let last: Error | undefined;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err instanceof Error ? err : new Error('check failed');
    }
    await sleep(500);
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${last.message})` : ''}`);
}

interface Alert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
}

describe.skipIf(!CAN_RUN)(`monitoring/ with a real Prometheus, the app under PM2 and the exporters${CAN_RUN ? '' : ` [${REASON}]`}`, () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rampart-prometheus-'));
  const children: ChildProcess[] = [];
  const token = randomBytes(32).toString('hex');
  let redis: TestRedisServer;
  let db: TestDatabase;
  let app: Pm2App;
  let appPort: number;
  let promPort: number;

  const api = async <T>(query: string): Promise<T> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/${query}`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`${query}: ${body.error}`);
    return body.data;
  };
  const instant = (expr: string) => api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`query?query=${encodeURIComponent(expr)}`);
  const alerts = async () => (await api<{ alerts: Alert[] }>('alerts')).alerts;
  const firing = async (name: string, labels: Record<string, string> = {}) =>
    (await alerts()).some((a) => a.labels.alertname === name && a.state === 'firing' && Object.entries(labels).every(([k, v]) => a.labels[k] === v));

  function run(command: string, args: string[], env: Record<string, string> = {}): void {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '', ...env } });
    let log = '';
    child.stderr.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
    child.on('exit', (code) => {
      if (code && code !== 0 && !stopping) console.error(`${command} exited with ${code}:\n${log}`);
    });
    children.push(child);
  }
  let stopping = false;

  beforeAll(async () => {
    redis = await TestRedisServer.create();
    db = await createTestDatabase();
    appPort = await freePort();
    const env = clusterEnv(appPort, redis.url, db.url, {
      TRUST_PROXY: '1',
      CORS_ORIGINS: '',
      OPS_TOKEN: token,
      // Not loopback: Prometheus, on loopback, must present the ops token.
      OPS_ALLOWED_ADDRESSES: '192.0.2.1',
      RATE_LIMIT_LOGIN_MAX: '3',
    });
    delete env.ENABLE_DIAGNOSTIC_ROUTES; // refused in production
    app = new Pm2App(`rampart-mon-${randomUUID().slice(0, 8)}`, env);
    app.start('production');

    const [nodePort, redisExporterPort, pgExporterPort] = [await freePort(), await freePort(), await freePort()];
    promPort = await freePort();
    run('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${nodePort}`]);
    run('prometheus-redis-exporter', [`-web.listen-address=127.0.0.1:${redisExporterPort}`, `-redis.addr=${redis.url}`]);
    const dsn = new URL(db.url);
    dsn.searchParams.set('sslmode', 'disable');
    run('prometheus-postgres-exporter', [`--web.listen-address=127.0.0.1:${pgExporterPort}`], { DATA_SOURCE_NAME: dsn.toString() });

    // The shipped configuration and rules, with this test's targets, intervals and `for`s.
    const config = parse(readFileSync(path.join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      scrape_configs: {
        job_name: string;
        authorization?: { credentials_file: string };
        dns_sd_configs?: unknown[];
        static_configs?: { targets: string[]; labels?: Record<string, string> }[];
      }[];
    };
    config.global = { scrape_interval: '3s', scrape_timeout: '3s', evaluation_interval: '2s' };
    mkdirSync(path.join(work, 'rules'));
    for (const file of ruleFiles()) {
      const doc = parse(readFileSync(file, 'utf8')) as { groups: { rules: { for?: string }[] }[] };
      for (const rule of doc.groups.flatMap((g) => g.rules)) if (rule.for) rule.for = '4s';
      writeFileSync(path.join(work, 'rules', path.basename(file)), stringify(doc));
    }
    config.rule_files = [path.join(work, 'rules/*.yml')];
    writeFileSync(path.join(work, 'ops-token'), token);
    const targets: Record<string, string[]> = {
      rampart: [`127.0.0.1:${appPort}`],
      node: [`127.0.0.1:${nodePort}`],
      redis: [`127.0.0.1:${redisExporterPort}`],
      postgres: [`127.0.0.1:${pgExporterPort}`],
    };
    for (const job of config.scrape_configs) {
      if (job.authorization) job.authorization.credentials_file = path.join(work, 'ops-token');
      // The security Redis only: the app under test has no cache Redis of its own.
      delete job.dns_sd_configs; // compose's service discovery: here, the one PM2 host
      job.static_configs = [{ ...job.static_configs?.[0], targets: targets[job.job_name]! }];
    }
    writeFileSync(path.join(work, 'prometheus.yml'), stringify(config));
    run('prometheus', [
      `--config.file=${path.join(work, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(work, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--storage.tsdb.retention.time=1h',
    ]);

    const everyWorkerReady = async () => {
      const list = app.instances();
      if (list.length !== 2 || !list.every((i) => i.status === 'online')) return false;
      for (let i = 0; i < 4; i++) if ((await fresh(appPort, 'GET', '/health/ready')).status !== 200) return false;
      return true;
    };
    await waitFor('two ready workers', everyWorkerReady, 90_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${app.logs()}`);
    });
  }, 180_000);

  afterAll(async () => {
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM'); // by PID: the processes this test started
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode === null && c.signalCode === null ? c.once('exit', r) : r(undefined)))));
    app?.kill();
    await redis?.stop();
    await db?.drop();
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('scrapes the app with its ops token (the app refuses a scrape without it) and every exporter', async () => {
    expect((await fresh(appPort, 'GET', '/metrics')).status).toBe(403);
    const t0 = Date.now();
    const up = await waitFor(
      'every target up',
      async () => {
        const { result } = await instant('up');
        return result.length === 4 && result.every((r) => r.value[1] === '1') && result;
      },
      60_000,
    );
    expect(up.map((r) => r.metric.job).sort()).toEqual(['node', 'postgres', 'rampart', 'redis']);
    console.log(`every target up ${Date.now() - t0} ms after the workers were ready`);
    // A host-wide scrape: both workers answered.
    const workers = await waitFor(
      'rampart_metrics_workers',
      async () => (await instant('rampart_metrics_workers')).result.length === 2 && instant('rampart_metrics_workers'),
      20_000,
    );
    expect(Object.fromEntries(workers.result.map((r) => [r.metric.state, r.value[1]]))).toEqual({ expected: '2', answered: '2' });
  }, 90_000);

  it('drives load and security events through the cluster', async () => {
    const email = `mon-${randomUUID()}@example.com`;
    const reg = (await fresh(appPort, 'POST', '/api/v1/auth/register', { email, password: 'monitoring password' })).json<{
      accessToken: string;
      refreshToken: string;
    }>();
    const bearer = { authorization: `Bearer ${reg.accessToken}` };
    expect((await fresh(appPort, 'GET', '/api/v1/users/me', undefined, bearer)).status).toBe(200);
    expect((await fresh(appPort, 'POST', '/api/v1/auth/refresh', { refreshToken: reg.refreshToken })).status).toBe(200);
    expect((await fresh(appPort, 'POST', '/api/v1/auth/refresh', { refreshToken: reg.refreshToken })).status).toBe(401); // reuse
    expect((await fresh(appPort, 'GET', '/api/v1/users/me', undefined, bearer)).status).toBe(401); // its session was revoked
    for (let i = 0; i < 5; i++) await fresh(appPort, 'POST', '/api/v1/auth/login', { email, password: 'wrong password' });
    await fresh(appPort, 'GET', '/api/v1/users/me', undefined, { authorization: 'Bearer not.a.jwt' });
    await fresh(appPort, 'GET', `/api/v1/items/${randomUUID()}`);
    const load = await autocannon({ url: `http://127.0.0.1:${appPort}/api/v1/items`, connections: 8, duration: 6 });
    console.log(`load: ${load.requests.total} requests, ${load.non2xx} non-2xx`);
    expect(load.requests.total).toBeGreaterThan(500);
    expect(load.errors).toBe(0);
  }, 60_000);

  it('fires the dependency alerts when Redis stops, and clears them when it is back', async () => {
    const email = `mon-${randomUUID()}@example.com`;
    const reg = (await fresh(appPort, 'POST', '/api/v1/auth/register', { email, password: 'monitoring password' })).json<{ accessToken: string }>();
    const bearer = { authorization: `Bearer ${reg.accessToken}` };
    for (const name of ['RampartDependencyDown', 'RedisDown', 'RampartRevocationStoreUnavailable']) expect(await firing(name), name).toBe(false);

    await redis.stop();
    const t0 = Date.now();
    const refused = setInterval(() => void fresh(appPort, 'GET', '/api/v1/users/me', undefined, bearer).catch(() => undefined), 250);
    try {
      await waitFor('RampartDependencyDown{dependency="redis"} firing', () => firing('RampartDependencyDown', { dependency: 'redis' }), 60_000);
      const downMs = Date.now() - t0;
      await waitFor('RedisDown firing', () => firing('RedisDown', { redis: 'security' }), 30_000);
      await waitFor('RampartRevocationStoreUnavailable firing', () => firing('RampartRevocationStoreUnavailable'), 30_000);
      console.log(
        `Redis stopped: RampartDependencyDown firing after ${downMs} ms, RedisDown and RampartRevocationStoreUnavailable after ${Date.now() - t0} ms`,
      );
      expect(await firing('RampartDependencyDown', { dependency: 'database' })).toBe(false);
    } finally {
      clearInterval(refused);
      await redis.start();
    }
    const t1 = Date.now();
    await waitFor('the dependency alerts to clear', async () => !(await firing('RampartDependencyDown')) && !(await firing('RedisDown')), 60_000);
    console.log(`Redis back: RampartDependencyDown and RedisDown cleared after ${Date.now() - t1} ms`);
    expect((await fresh(appPort, 'GET', '/health/ready')).status).toBe(200);
  }, 150_000);

  it('has data for every recording rule', async () => {
    const recorded = rules().flatMap((r) => (r.record ? [r.record] : []));
    expect(recorded.length).toBeGreaterThan(15);
    const empty: string[] = [];
    for (const name of recorded) if ((await instant(name)).result.length === 0) empty.push(name);
    expect(empty).toEqual([]);
  }, 60_000);

  it('has data for every dashboard query', async () => {
    const queries = dashboardQueries();
    const empty: string[] = [];
    for (const q of queries) {
      if ((await instant(concrete(q.expr, '2m'))).result.length === 0) empty.push(`${q.dashboard} / ${q.panel}: ${q.expr}`);
    }
    expect(empty).toEqual([]);
    console.log(`${queries.length} dashboard queries, each with data`);
  }, 60_000);
});
