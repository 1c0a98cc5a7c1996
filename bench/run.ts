// Benchmark harness: what Rampart's protections cost, as ratios to bare Express in one run.
//
// Starts bare node:http, bare Express 5 and Rampart (production settings, real Redis and
// PostgreSQL, production logging) on loopback, then drives each scenario with autocannon from a
// separate process, interleaved (A B C A B C ...), and reports medians. Speed is reported, never
// asserted: the exit code is non-zero only when the harness itself fails.
//
//   npm run bench            full run (writes BENCHMARKS.md)
//   npm run bench -- --short a few seconds per scenario (CI: proves the harness works)
//   npm run bench -- --pinned only the pinned and overload runs (bench/pinned.ts), to .bench-pinned.md
//   BENCH_BASELINE=<dir> npm run bench   also runs the main scenarios on the build in <dir> (a checkout
//                            of an earlier commit, after npm ci and npm run build), side by side
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { deleteRedisPrefix } from '../test/helpers/app';
import { createTestDatabase } from '../test/helpers/database';
import { NGINX, TestNginx } from '../test/helpers/nginx';
import { Pm2App, productionNodeArgs } from '../test/helpers/pm2';
import { freePort } from '../test/helpers/redis-server';
import { canPin, LOAD_CPU, peakRssMb, percentile, pin, probe, SERVER_CPU, wrk, type WrkResult } from './pinned';

const ROOT = path.resolve(__dirname, '..');
const PRODUCTION_NODE_ARGS = productionNodeArgs();
const short = process.argv.includes('--short');
const pinnedOnly = process.argv.includes('--pinned');
const DURATION_S = short ? 2 : Number(process.env.BENCH_DURATION ?? 10);
const REPEATS = short ? 1 : Number(process.env.BENCH_REPEATS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const OUTPUT = path.join(ROOT, short ? '.bench-short.md' : pinnedOnly ? '.bench-pinned.md' : 'BENCHMARKS.md');
// The pinned runs (bench/pinned.ts): repetitions of each scenario, and the overload scenario.
const PINNED_REPEATS = short ? 1 : Number(process.env.BENCH_PINNED_REPEATS ?? 3);
const OVERLOAD_CONNECTIONS = Number(process.env.BENCH_OVERLOAD_CONNECTIONS ?? 1000);
const OVERLOAD_S = short ? 5 : Number(process.env.BENCH_OVERLOAD_DURATION ?? 20);
// Overload runs with a lower in-flight cap beside the defaults (admitted latency is about the cap
// over the throughput: Little's law); empty to leave them out.
const OVERLOAD_IN_FLIGHT = (process.env.BENCH_OVERLOAD_IN_FLIGHT ?? '128')
  .split(',')
  .map((n) => n.trim())
  .filter(Boolean)
  .map(Number);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const BASELINE = process.env.BENCH_BASELINE ? path.resolve(process.env.BENCH_BASELINE) : undefined;

/** Where a scenario sends its load. */
interface Target {
  name: string;
  port: number;
}

/** A server process this harness started. */
interface Server extends Target {
  child: ChildProcess;
}

interface Scenario {
  name: string;
  server: () => Target;
  path: () => string;
  headers?: () => Record<string, string>;
  https?: boolean;
  /** What a response must look like for the run to count (a harness check, not a speed check). */
  expect: { status: number; xCache?: string };
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

async function startServer(name: string, script: string, env: Record<string, string>, execArgv: string[] = [], cwd = ROOT): Promise<Server> {
  const port = await freePort();
  const child = fork(script, [], { cwd, execArgv, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not become ready:\n${stderr}`)), 60_000);
    child.on('message', (m) => {
      if (m === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}:\n${stderr}`)));
  });
  return { name, port, child };
}

/** A GET through nginx's self-signed TLS (fetch cannot skip verification per request). */
function insecureGet(port: number, urlPath: string): Promise<{ status: number; headers: Headers; json: unknown }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: urlPath, rejectUnauthorized: false }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers, json: text ? JSON.parse(text) : undefined });
        });
      })
      .on('error', reject);
  });
}

async function http(port: number, method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}, secure = false) {
  if (secure) return insecureGet(port, urlPath) as Promise<{ status: number; headers: Headers; json: unknown }>;
  const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as unknown) : undefined };
}

/** The part of autocannon's --json report the table uses. */
interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

function autocannon(url: string, headers: Record<string, string>, insecureTls = false): Promise<Sample> {
  const args = [path.join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(CONNECTIONS), '-d', String(DURATION_S), '--json'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  return new Promise((resolve, reject) => {
    // nginx in the bench has a self-signed certificate.
    const env = insecureTls ? { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: '0' } : process.env;
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const r = JSON.parse(out) as AutocannonResult;
      resolve({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx });
    });
  });
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round(kb / 1024);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  const prefix = `rampart-bench-${randomUUID().slice(0, 8)}:`;
  // A database of the run's own, dropped at the end: the benchmark leaves no rows behind.
  const database = await createTestDatabase(DATABASE_URL);
  let baselineDatabase: Awaited<ReturnType<typeof createTestDatabase>> | undefined;
  const rampartEnv: Record<string, string> = {
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    REDIS_URL,
    DATABASE_URL: database.url,
    JWT_ACCESS_SECRET: randomBytes(32).toString('hex'),
    JWT_REFRESH_SECRET: randomBytes(32).toString('hex'),
    CORS_ORIGINS: 'https://app.example.com',
    TRUST_PROXY: 'loopback',
    // Limits stay on (and cost what they cost) but high enough never to refuse the load.
    RATE_LIMIT_API_MAX: '1000000000',
    RATE_LIMIT_REGISTER_MAX: '1000',
    REDIS_KEY_PREFIX: prefix,
    // The run's tokens are issued once, at the start: they must outlive a full run (about 20
    // minutes with a baseline); with the default 15 minutes the last repetitions measured 401s.
    JWT_ACCESS_TTL: '2h',
  };

  const servers: Server[] = [];
  let cluster: Pm2App | undefined;
  let nginx: TestNginx | undefined;
  const stopAll = () => servers.forEach((s) => s.child.exitCode === null && s.child.kill('SIGTERM'));
  process.on('exit', stopAll);
  try {
    const bareHttp = await startServer('node:http', path.join(ROOT, 'bench/servers/bare-http.js'), {});
    servers.push(bareHttp);
    const bareExpress = await startServer('express', path.join(ROOT, 'bench/servers/bare-express.js'), {});
    servers.push(bareExpress);
    // The Node flags production uses (ecosystem.config.js; Dockerfile.backend has the same).
    const rampartArgs = PRODUCTION_NODE_ARGS;
    const rampart = await startServer('rampart', path.join(ROOT, 'dist/server.js'), rampartEnv, rampartArgs);
    servers.push(rampart);
    // The same app with its cache store unreachable: every read is served from PostgreSQL.
    const uncached = await startServer(
      'rampart (cache bypassed)',
      path.join(ROOT, 'dist/server.js'),
      {
        ...rampartEnv,
        CACHE_REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      },
      rampartArgs,
    );
    servers.push(uncached);

    const { bearer, itemId } = await fixtures(rampart.port);

    // An earlier build, side by side: its own database and key prefix, the same settings.
    let baseline: (Awaited<ReturnType<typeof fixtures>> & { server: Server }) | undefined;
    if (BASELINE) {
      baselineDatabase = await createTestDatabase(DATABASE_URL);
      const commit = execFileSync('git', ['-C', BASELINE, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      const server = await startServer(
        `baseline ${commit}`,
        path.join(BASELINE, 'dist/server.js'),
        { ...rampartEnv, DATABASE_URL: baselineDatabase.url, REDIS_KEY_PREFIX: `${prefix}baseline:` },
        rampartArgs,
        BASELINE,
      );
      servers.push(server);
      baseline = { server, ...(await fixtures(server.port)) };
    }

    // The PM2 cluster (2 workers) behind nginx, as deployed on a host.
    let edge: Target | undefined;
    if (NGINX && !pinnedOnly) {
      const clusterPort = await freePort();
      cluster = new Pm2App(`rampart-bench-${randomUUID().slice(0, 8)}`, {
        ...rampartEnv,
        PORT: String(clusterPort),
        HOST: '127.0.0.1',
        TRUST_PROXY: '1',
        PM2_INSTANCES: '2',
        NODE_MAX_OLD_SPACE_MB: '128',
      });
      cluster.start('production');
      // The general per-address flood limit is raised: the load comes from one address.
      nginx = new TestNginx({ http: await freePort(), https: await freePort(), upstream: clusterPort }, '1000000r/s');
      await nginx.start();
      const deadline = Date.now() + 60_000;
      while (cluster.instances().filter((i) => i.status === 'online').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 300));
      edge = { name: 'pm2 ×2 behind nginx', port: nginx.ports.https };
    } else if (!NGINX) {
      process.stdout.write('nginx not installed: the PM2-behind-nginx scenario is left out\n');
    }

    const scenarios: Scenario[] = [
      { name: 'node:http JSON hello', server: () => bareHttp, path: () => '/', expect: { status: 200 } },
      { name: 'Express 5 JSON hello', server: () => bareExpress, path: () => '/hello', expect: { status: 200 } },
      { name: 'Rampart GET /health', server: () => rampart, path: () => '/health', expect: { status: 200 } },
      {
        name: 'Rampart GET /api/v1/items/:id (cached, HIT)',
        server: () => rampart,
        path: () => `/api/v1/items/${itemId}`,
        expect: { status: 200, xCache: 'HIT' },
      },
      {
        name: 'Rampart GET /api/v1/items/:id (uncached)',
        server: () => uncached,
        path: () => `/api/v1/items/${itemId}`,
        expect: { status: 200, xCache: 'BYPASS' },
      },
      {
        name: 'Rampart GET /api/v1/items?tag=bench (list page, cached)',
        server: () => rampart,
        path: () => '/api/v1/items?tag=bench',
        expect: { status: 200, xCache: 'HIT' },
      },
      {
        name: 'Rampart GET /api/v1/users/me (authenticated)',
        server: () => rampart,
        path: () => '/api/v1/users/me',
        headers: () => bearer,
        expect: { status: 200, xCache: 'HIT' },
      },
      // The same with the cache store unreachable: the profile is read from PostgreSQL every time.
      {
        name: 'Rampart GET /api/v1/users/me (authenticated, uncached)',
        server: () => uncached,
        path: () => '/api/v1/users/me',
        headers: () => bearer,
        expect: { status: 200, xCache: 'BYPASS' },
      },
    ];
    if (baseline) {
      const b = baseline;
      scenarios.push(
        { name: `Baseline ${b.server.name.slice(9)}: GET /health`, server: () => b.server, path: () => '/health', expect: { status: 200 } },
        {
          name: `Baseline ${b.server.name.slice(9)}: GET /api/v1/items/:id (cached, HIT)`,
          server: () => b.server,
          path: () => `/api/v1/items/${b.itemId}`,
          expect: { status: 200, xCache: 'HIT' },
        },
        {
          name: `Baseline ${b.server.name.slice(9)}: GET /api/v1/users/me (authenticated)`,
          server: () => b.server,
          path: () => '/api/v1/users/me',
          headers: () => b.bearer,
          expect: { status: 200, xCache: 'HIT' },
        },
      );
    }
    if (edge) {
      scenarios.push({
        name: 'PM2 cluster (2 workers) behind nginx (TLS): GET /api/v1/items/:id (cached, HIT)',
        server: () => edge,
        path: () => `/api/v1/items/${itemId}`,
        https: true,
        expect: { status: 200, xCache: 'HIT' },
      });
    }

    // Warm up and check each scenario answers as it should (twice: the first read populates the cache).
    for (const s of scenarios) {
      await http(s.server().port, 'GET', s.path(), undefined, s.headers?.() ?? {}, s.https);
      const r = await http(s.server().port, 'GET', s.path(), undefined, s.headers?.() ?? {}, s.https);
      if (r.status !== s.expect.status || (s.expect.xCache && r.headers.get('x-cache') !== s.expect.xCache)) {
        throw new Error(`${s.name}: expected ${JSON.stringify(s.expect)}, got ${r.status} x-cache=${r.headers.get('x-cache')}`);
      }
    }

    const samples = new Map<string, Sample[]>(scenarios.map((s) => [s.name, []]));
    for (let rep = 0; rep < (pinnedOnly ? 0 : REPEATS); rep++) {
      for (const s of scenarios) {
        const sample = await autocannon(`${s.https ? 'https' : 'http'}://127.0.0.1:${s.server().port}${s.path()}`, s.headers?.() ?? {}, s.https);
        samples.get(s.name)!.push(sample);
        process.stdout.write(
          `rep ${rep + 1}/${REPEATS} ${s.name}: ${Math.round(sample.rps)} req/s, p99 ${sample.p99} ms, errors ${sample.errors}, non-2xx ${sample.non2xx}\n`,
        );
      }
    }

    const pinnedReport = await runPinned({
      bareExpress,
      rampart,
      itemId,
      bearer,
      baseline,
      startRampart: (name, env) => startServer(name, path.join(ROOT, 'dist/server.js'), { ...rampartEnv, ...env }, rampartArgs),
      servers,
    });

    const rss = new Map(servers.map((s) => [s.name, String(rssMb(s.child.pid!))]));
    if (cluster && edge)
      rss.set(
        edge.name,
        cluster
          .instances()
          .map((i) => rssMb(i.pid))
          .join(' + '),
      );
    const med = (name: string, key: keyof Sample) => median(samples.get(name)!.map((x) => x[key]));
    const expressRps = med('Express 5 JSON hello', 'rps');
    const cachedName = 'Rampart GET /api/v1/items/:id (cached, HIT)';
    // Each repetition's ratio to Express measured right before it: shows the spread the noise makes.
    const expressName = 'Express 5 JSON hello';
    const spread = (name: string) => {
      const ratios = samples.get(name)!.map((x, i) => x.rps / samples.get(expressName)![i]!.rps);
      return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`;
    };
    const rows = (pinnedOnly ? [] : scenarios).map((s) => {
      const rps = med(s.name, 'rps');
      const ratio =
        s.server() === bareExpress ? '1.00' : (rps / expressRps).toFixed(2) + (s.https ? ` (${(rps / med(cachedName, 'rps')).toFixed(2)} × one process)` : '');
      const errors = samples.get(s.name)!.reduce((a, x) => a + x.errors, 0);
      const non2xx = samples.get(s.name)!.reduce((a, x) => a + x.non2xx, 0);
      const range = s.server() === bareExpress ? '' : spread(s.name);
      return `| ${s.name} | ${Math.round(rps)} | ${med(s.name, 'p50')} | ${med(s.name, 'p99')} | ${errors} | ${non2xx} | ${ratio} | ${range} | ${rss.get(s.server().name)} |`;
    });

    const versions = (JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> }).packages;
    const v = (pkg: string) => versions[`node_modules/${pkg}`]?.version ?? '?';
    const report = [
      `# Benchmarks${short ? ' (short mode: not representative)' : ''}`,
      '',
      `Run on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB,`,
      `Node ${process.version}, Express ${v('express')}, ioredis ${v('ioredis')}, pg ${v('pg')}, autocannon ${v('autocannon')}.`,
      `Each scenario: ${CONNECTIONS} connections for ${DURATION_S} s, ${REPEATS} interleaved repetition(s), medians reported.`,
      `Rampart runs with NODE_ENV=production and \`${PRODUCTION_NODE_ARGS.join(' ')}\` (as in ecosystem.config.js): full middleware stack, real Redis and PostgreSQL, JSON access logs at \`info\` (to /dev/null).`,
      "Server, load generator, Redis and PostgreSQL share the machine's cores, so absolute figures are low and routes that call Redis also pay for Redis's CPU; compare the ratios, measured in the same run. On a shared 2-core machine one repetition can differ from the next by 10-20 %: the range column shows each repetition's ratio to the Express run just before it.",
      '',
      ...(pinnedOnly
        ? []
        : [
            '| scenario | req/s | p50 ms | p99 ms | errors | non-2xx | ratio to Express (median) | ratio per repetition | RSS after load (MB) |',
            '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
            ...rows,
            '',
          ]),
      ...pinnedReport,
      'Reproduce: `npm run bench` (needs Redis and PostgreSQL; `REDIS_URL`/`DATABASE_URL` or the defaults on 127.0.0.1; wrk for the pinned runs).',
      '',
      // The hand-kept part: what changed and what it did to the ratios.
      ...(short || pinnedOnly ? [] : [readFileSync(path.join(ROOT, 'bench/HISTORY.md'), 'utf8').trim(), '']),
    ].join('\n');
    writeFileSync(OUTPUT, report);
    process.stdout.write(`\n${report}\nwritten to ${path.relative(ROOT, OUTPUT)}\n`);
  } finally {
    stopAll();
    await nginx?.stop().catch(() => undefined);
    try {
      cluster?.kill();
    } catch {
      // best effort: the daemon is ours and dies with its PM2_HOME
    }
    // The run's keys (sessions live 30 days) are removed; nothing else is touched.
    await deleteRedisPrefix(REDIS_URL, prefix).catch(() => undefined);
    await database.drop().catch(() => undefined);
    await baselineDatabase?.drop().catch(() => undefined);
  }
}

/** Fixtures through the public API: a user, a token, an item and a page of items. */
async function fixtures(port: number): Promise<{ bearer: Record<string, string>; itemId: string }> {
  const email = `bench-${randomUUID()}@example.com`;
  const reg = await http(port, 'POST', '/api/v1/auth/register', { email, password: 'bench password 123' });
  if (reg.status !== 201) throw new Error(`register failed: ${reg.status} ${JSON.stringify(reg.json)}`);
  const bearer = { authorization: `Bearer ${(reg.json as { accessToken: string }).accessToken}` };
  let itemId = '';
  for (let i = 0; i < 20; i++) {
    const item = await http(port, 'POST', '/api/v1/items', { name: `bench item ${i}`, price: i, tags: ['bench'] }, bearer);
    if (item.status !== 201) throw new Error(`create item failed: ${item.status}`);
    itemId = (item.json as { item: { id: string } }).item.id;
  }
  return { bearer, itemId };
}

interface PinnedInput {
  bareExpress: Server;
  /** An earlier build run side by side (BENCH_BASELINE). */
  baseline?: { server: Server; itemId: string; bearer: Record<string, string> };
  rampart: Server;
  itemId: string;
  bearer: Record<string, string>;
  startRampart: (name: string, env: Record<string, string>) => Promise<Server>;
  servers: Server[];
}

/** A Rampart process with its operations listener (OPS_PORT). */
interface OpsServer extends Server {
  opsPort: number;
}

/** Reads the app's refusals by reason from /metrics (loopback may read it in production). */
async function shedCounts(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^rampart_shed_total\{reason="(\w+)"\} (\S+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

const fmt = (ms: number) => (Number.isNaN(ms) ? '–' : ms < 10 ? ms.toFixed(1) : String(Math.round(ms)));

/** One route's answers with one status, by duration bucket: cumulative counts by upper bound (s). */
type Buckets = Map<number, number>;

/** Reads the app's own http_request_duration_seconds buckets of GET `route` answered `status`. */
async function durationBuckets(port: number, route: string, status: string): Promise<Buckets> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const buckets: Buckets = new Map();
  for (const m of text.matchAll(/^http_request_duration_seconds_bucket\{([^}]*)\} (\S+)$/gm)) {
    const labels: Record<string, string> = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (labels.method !== 'GET' || labels.route !== route || labels.status_code !== status) continue;
    buckets.set(labels.le === '+Inf' ? Infinity : Number(labels.le), Number(m[2]));
  }
  return buckets;
}

/**
 * The q-quantile of what was observed between two readings of a histogram, interpolated within its
 * bucket as Prometheus's histogram_quantile does; Infinity when it falls past the last bound.
 */
function quantileBetween(before: Buckets, after: Buckets, q: number): { count: number; value: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const cumulative = bounds.map((le) => after.get(le)! - (before.get(le) ?? 0));
  const count = cumulative.at(-1) ?? 0;
  if (count === 0) return { count, value: NaN };
  const rank = q * count;
  const i = cumulative.findIndex((c) => c >= rank);
  if (bounds[i] === Infinity) return { count, value: Infinity };
  const lower = i === 0 ? 0 : bounds[i - 1]!;
  const below = i === 0 ? 0 : cumulative[i - 1]!;
  return { count, value: lower + ((bounds[i]! - lower) * (rank - below)) / (cumulative[i]! - below) };
}

const fmtSeconds = (s: number) => (s === Infinity ? '> 10000' : fmt(s * 1000));

/** The overload scenario on one process: wrk far past capacity, probes beside it. */
async function overload(server: OpsServer, itemId: string): Promise<string> {
  pin(server.child.pid!, SERVER_CPU);
  const base = `http://127.0.0.1:${server.port}`;
  const ITEM_ROUTE = '/api/v1/items/:id';
  await http(server.port, 'GET', `/api/v1/items/${itemId}`); // fills the cache
  // Read on the operations listener: the figures of the API port are not queued behind the load.
  const before = await shedCounts(server.opsPort);
  const durationsBefore = await durationBuckets(server.opsPort, ITEM_ROUTE, '200');
  const live = probe(`${base}/health/live`, 100);
  const liveOps = probe(`http://127.0.0.1:${server.opsPort}/health/live`, 100);
  const admitted = probe(`${base}/api/v1/items/${itemId}`, 50, { 'accept-encoding': 'gzip' });
  const load = await wrk(`${base}/api/v1/items/${itemId}`, { connections: OVERLOAD_CONNECTIONS, durationS: OVERLOAD_S });
  const [liveResult, liveOpsResult, admittedResult] = await Promise.all([live.stop(), liveOps.stop(), admitted.stop()]);
  const after = await shedCounts(server.opsPort);
  const durationsAfter = await durationBuckets(server.opsPort, ITEM_ROUTE, '200');
  const served = {
    p50: quantileBetween(durationsBefore, durationsAfter, 0.5),
    p99: quantileBetween(durationsBefore, durationsAfter, 0.99),
  };
  const shed = Object.entries(after)
    .map(([reason, n]) => [reason, n - (before[reason] ?? 0)] as const)
    .filter(([, n]) => n > 0);
  const statuses = { ...load.statuses };
  for (const [status, n] of Object.entries(admittedResult.statuses)) statuses[status] = (statuses[status] ?? 0) + n;
  const other5xx = Object.entries(statuses)
    .filter(([status]) => Number(status) >= 500 && status !== '503')
    .reduce((a, [, n]) => a + n, 0);
  const sent = Object.values(admittedResult.statuses).reduce((a, n) => a + n, 0) + admittedResult.failures;
  const admittedMs = admittedResult.latencies['200'] ?? [];
  const liveness = (r: typeof liveResult) => {
    const ms = Object.values(r.latencies).flat();
    return `${fmt(percentile(ms, 50))} / ${fmt(Math.max(...ms))} (${r.failures} failed, ${ms.length - (r.statuses['200'] ?? 0)} not 200)`;
  };
  const row = [
    server.name,
    Math.round(load.rps),
    `${fmt(load.p50)} / ${fmt(load.p99)}`,
    `${served.p99.count}: ${fmtSeconds(served.p50.value)} / ${fmtSeconds(served.p99.value)}`,
    `${admittedMs.length} of ${sent}: ${fmt(percentile(admittedMs, 50))} / ${fmt(percentile(admittedMs, 99))}`,
    statuses['503'] ?? 0,
    shed.map(([reason, n]) => `${reason} ${n}`).join(', ') || '0',
    other5xx,
    load.errors,
    liveness(liveResult),
    liveness(liveOpsResult),
    peakRssMb(server.child.pid!),
  ];
  process.stdout.write(
    `overload ${server.name}: ${JSON.stringify({ load, served, live: liveResult.failures, liveOps: liveOpsResult.failures, admitted: admittedResult.statuses })}\n`,
  );
  return `| ${row.join(' | ')} |`;
}

function stop(server: Server, servers: Server[]): void {
  server.child.kill('SIGTERM');
  servers.splice(servers.indexOf(server), 1);
}

/** The pinned scenarios and the overload scenario; the report's lines (empty when wrk is missing). */
async function runPinned({ bareExpress, rampart, itemId, bearer, baseline, startRampart, servers }: PinnedInput): Promise<string[]> {
  const unavailable = canPin();
  if (unavailable) {
    process.stdout.write(`pinned runs left out: ${unavailable}\n`);
    return [`Pinned runs left out: ${unavailable}.`, ''];
  }
  // The harness itself (it sends the probes) stays off the server's core.
  pin(process.pid, LOAD_CPU);
  for (const server of [bareExpress, rampart, ...(baseline ? [baseline.server] : [])]) pin(server.child.pid!, SERVER_CPU);
  const scenarios: { name: string; target: Server; path: string; headers?: Record<string, string> }[] = [
    { name: 'Express 5 JSON hello', target: bareExpress, path: '/hello' },
    { name: 'Rampart GET /health', target: rampart, path: '/health' },
    { name: 'Rampart GET /api/v1/items/:id (cached, HIT)', target: rampart, path: `/api/v1/items/${itemId}` },
    { name: 'Rampart GET /api/v1/users/me (authenticated)', target: rampart, path: '/api/v1/users/me', headers: bearer },
  ];
  if (baseline) {
    const label = `Baseline ${baseline.server.name.slice(9)}`;
    scenarios.push(
      { name: `${label}: GET /health`, target: baseline.server, path: '/health' },
      { name: `${label}: GET /api/v1/items/:id (cached, HIT)`, target: baseline.server, path: `/api/v1/items/${baseline.itemId}` },
      { name: `${label}: GET /api/v1/users/me (authenticated)`, target: baseline.server, path: '/api/v1/users/me', headers: baseline.bearer },
    );
  }
  const results = new Map<string, WrkResult[]>(scenarios.map((s) => [s.name, []]));
  for (let rep = 0; rep < PINNED_REPEATS; rep++) {
    for (const s of scenarios) {
      const r = await wrk(`http://127.0.0.1:${s.target.port}${s.path}`, { connections: CONNECTIONS, durationS: DURATION_S, headers: s.headers });
      results.get(s.name)!.push(r);
      process.stdout.write(
        `pinned rep ${rep + 1}/${PINNED_REPEATS} ${s.name}: ${Math.round(r.rps)} req/s, p99 ${fmt(r.p99)} ms, ${JSON.stringify(r.statuses)}\n`,
      );
    }
  }
  const medianOf = (name: string, key: 'rps' | 'p50' | 'p99') => median(results.get(name)!.map((r) => r[key]));
  const express = results.get('Express 5 JSON hello')!;
  const rows = scenarios.map((s) => {
    const rs = results.get(s.name)!;
    const ratios = rs.map((r, i) => r.rps / express[i]!.rps);
    const non2xx = rs.reduce(
      (a, r) =>
        a +
        Object.entries(r.statuses)
          .filter(([st]) => !st.startsWith('2'))
          .reduce((b, [, n]) => b + n, 0),
      0,
    );
    const ratio = s.target === bareExpress ? '1.00' : (medianOf(s.name, 'rps') / medianOf('Express 5 JSON hello', 'rps')).toFixed(2);
    const range = s.target === bareExpress ? '' : `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}`;
    return `| ${s.name} | ${Math.round(medianOf(s.name, 'rps'))} | ${fmt(medianOf(s.name, 'p50'))} | ${fmt(medianOf(s.name, 'p99'))} | ${non2xx} | ${ratio} | ${range} |`;
  });

  // A fresh process per overload run, so its peak memory is its own, with its operations listener.
  const overloadRows: string[] = [];
  const variants: [string, Record<string, string>][] = [
    ['Rampart, admission control on (defaults)', {}],
    ...(short
      ? []
      : ([
          ...OVERLOAD_IN_FLIGHT.map((n): [string, Record<string, string>] => [`Rampart, SHED_MAX_IN_FLIGHT=${n}`, { SHED_MAX_IN_FLIGHT: String(n) }]),
          ['Rampart, admission control off', { SHED_EVENT_LOOP_DELAY_MS: '0', SHED_MAX_IN_FLIGHT: '0', SHED_HEAP_USED_PERCENT: '0' }],
        ] as [string, Record<string, string>][])),
  ];
  for (const [name, env] of variants) {
    const opsPort = await freePort();
    const fresh: OpsServer = { ...(await startRampart(name, { ...env, OPS_PORT: String(opsPort) })), opsPort };
    servers.push(fresh);
    overloadRows.push(await overload(fresh, itemId));
    stop(fresh, servers);
  }
  return [
    '## Pinned: the server on one core, wrk on the other',
    '',
    `Server and all its threads on CPU ${SERVER_CPU} (\`taskset -a\`), wrk (1 thread) on CPU ${LOAD_CPU}, \`Accept-Encoding: gzip\` on every request; ${CONNECTIONS} connections for ${DURATION_S} s, ${PINNED_REPEATS} interleaved repetition(s), medians. Redis and PostgreSQL are not pinned.`,
    '',
    '| scenario | req/s | p50 ms | p99 ms | non-2xx | ratio to Express (median) | ratio per repetition |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    `### Overload: ${OVERLOAD_CONNECTIONS} connections for ${OVERLOAD_S} s on the cached read`,
    '',
    'wrk as above; beside it, from the load core, a probe of `GET /health/live` every 100 ms on the API port and another on the operations listener (`OPS_PORT`), and of the cached read every 50 ms, each on a new connection (as a Kubernetes probe connects). "Admitted, server-side": the 200 answers of the cached read and their p50 / p99 from the app\'s own `http_request_duration_seconds` (read from `/metrics` before and after the run; from admission to the last byte written, not the time in the accept queue; interpolated within the histogram\'s buckets as Prometheus\'s `histogram_quantile` does). "Admitted probes": how many read probes were answered 200 of all sent, and the p50 / p99 of those 200 answers, as a client on a new connection sees them (the accept queue included). Refusals by reason come from `rampart_shed_total`; peak RSS is the process\'s VmHWM.',
    '',
    '| process | req/s (all answers) | p50 / p99 ms (all answers) | admitted, server-side: count: p50 / p99 ms | admitted probes: p50 / p99 ms | 503 | refused by admission control | 5xx other than 503 | wrk socket errors | /health/live on the API port p50 / max ms | /health/live on OPS_PORT p50 / max ms | peak RSS MB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...overloadRows,
    '',
  ];
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
