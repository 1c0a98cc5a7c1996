// `scripts/check-production`: a doctor for a deployment. Reads the configuration a deployment
// would use (an env file, the PM2 process file, the nginx site) and reports every problem with a
// clear message; exits 1 when there is any. It connects to Redis and PostgreSQL to check them.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import bytes from 'bytes';
import pg from 'pg';
import { ConfigError, loadConfig, type Config, type Env, type RedisTarget } from '../config';
import { describeRedisTarget } from '../config/redis-url';
import type { Cluster, Redis } from 'ioredis';
import { newRedis, type RedisAccess } from '../lib/redis';
import { withTimeout } from '../lib/timeout';
import { redactString } from '../lib/redact';
import { appContainer, containerEnv, kubernetesProblems, renderOverlay, type K8sObject } from './kubernetes-policy';

interface Options {
  envFile?: string;
  ecosystem: string;
  nginxDir: string;
  connect: boolean;
  /** A kustomize overlay to render and check instead of the PM2 process file and nginx. */
  kubernetes?: string;
}

interface Finding {
  ok: boolean;
  check: string;
  message: string;
}

const USAGE = `Usage: scripts/check-production [--env-file FILE] [--ecosystem FILE] [--nginx-dir DIR] [--kubernetes DIR] [--no-connect]

Checks a production configuration and reports each problem:
  configuration   every variable the app validates (secrets, TRUST_PROXY, CORS, ...)
  trust proxy     X-Forwarded-For trusted neither too much nor too little
  redis           reachable, and an eviction policy that can never drop security keys; on a
                  Cluster every master, each by its address, and that it persists its data
  database        reachable as the app connects; behind a transaction pooler, a statement timeout on the role
  pm2             cluster mode, wait_ready, kill_timeout longer than drain + shutdown timeout
  nginx           body limit equal to BODY_LIMIT, upstream keep-alive shorter than the app's
  kubernetes      (with --kubernetes) the overlay rendered by kubectl kustomize: probes, grace
                  period against the app's shutdown timings, selectors, resources, security
                  context, pinned images, Ingress (docs/kubernetes.md); the configuration is then
                  the overlay's ConfigMap plus --env-file (the Secret's values)

  --env-file FILE   environment of the deployment (KEY=value lines); default: the process env
  --ecosystem FILE  PM2 process file (default: ecosystem.config.js)
  --nginx-dir DIR   nginx configuration folder (default: nginx)
  --kubernetes DIR  a kustomize overlay, e.g. deploy/kubernetes/overlays/production (needs kubectl);
                    replaces the pm2 and nginx checks
  --no-connect      skip the Redis and PostgreSQL connection checks
Exit status: 0 when everything is fine, 1 when a problem was found, 2 on bad usage.`;

function parseArgs(argv: string[]): Options | 'help' {
  const options: Options = { ecosystem: 'ecosystem.config.js', nginxDir: 'nginx', connect: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--help' || arg === '-h') return 'help';
    else if (arg === '--env-file') options.envFile = value();
    else if (arg === '--ecosystem') options.ecosystem = value();
    else if (arg === '--nginx-dir') options.nginxDir = value();
    else if (arg === '--kubernetes') options.kubernetes = value();
    else if (arg === '--no-connect') options.connect = false;
    else throw new Error(`unknown argument '${arg}'`);
  }
  return options;
}

/** KEY=value lines; # comments; optional single or double quotes around the value. */
export function parseEnvFile(text: string): Env {
  const env: Env = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/.exec(line.trim().replace(/^export\s+/, ''));
    if (!match || line.trim().startsWith('#')) continue;
    let value = match[2]!.trim();
    if (/^(['"]).*\1$/.test(value)) value = value.slice(1, -1);
    env[match[1]!] = value;
  }
  return env;
}

function checkTrustProxy(config: Config): Finding {
  const tp = config.trustProxy;
  if (tp === false) {
    return {
      ok: false,
      check: 'trust proxy',
      message:
        "TRUST_PROXY is off: behind nginx every client would share the proxy's address, and so one rate-limit bucket. Set it to 1 (one proxy) or the proxy's address.",
    };
  }
  if (typeof tp === 'number' && tp > 3) {
    return {
      ok: false,
      check: 'trust proxy',
      message: `TRUST_PROXY=${tp} hops is more than a usual deployment has; each extra hop lets a client forge one more X-Forwarded-For entry.`,
    };
  }
  return { ok: true, check: 'trust proxy', message: `TRUST_PROXY=${JSON.stringify(tp)}` };
}

/** Connection settings for the doctor: it connects once, retries nothing and leaves. */
const DOCTOR_OPTIONS = {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  connectTimeout: 2000,
  commandTimeout: 2000,
  retryStrategy: () => null,
  // One pass over the sentinels, no failover watch.
  sentinelRetryStrategy: () => null,
  failoverDetector: false,
} as const;

function evictionProblem(where: string, policy: string): string {
  return `${where} has maxmemory-policy ${policy}: under memory pressure it can evict rate-limit counters and revocations (every key has a TTL, so volatile-* policies evict them too), silently un-revoking tokens. Use noeviction, and a separate Redis (CACHE_REDIS_URL) for the cache.`;
}

/** Reachable, and (for security state) a policy that never evicts; one server or a Sentinel group (a Cluster: checkRedisCluster). */
export async function checkRedis(target: RedisTarget, tlsCa: string | undefined, role: string, mustNotEvict: boolean): Promise<Finding> {
  const client = newRedis(target, { tlsCa }, DOCTOR_OPTIONS);
  client.on('error', () => undefined);
  const where = describeRedisTarget(target);
  try {
    await client.connect();
    // INFO works where CONFIG is renamed away (as in the compose file).
    const info = await client.info('memory');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? 'unknown';
    if (mustNotEvict && policy !== 'noeviction') return { ok: false, check: `redis (${role})`, message: evictionProblem(where, policy) };
    return { ok: true, check: `redis (${role})`, message: `${where} reachable, maxmemory-policy ${policy}` };
  } catch (err) {
    return { ok: false, check: `redis (${role})`, message: `${where} unreachable: ${(err as Error).message}` };
  } finally {
    client.disconnect();
  }
}

/**
 * A Cluster: every master, each reported by its address. Each must be reachable and, for security
 * state, never evict and persist its data: a master that restarts empty before its replica takes
 * over keeps its slots and serves them empty, forgetting every revocation it held.
 */
export async function checkRedisCluster(
  target: Extract<RedisTarget, { kind: 'cluster' }>,
  access: RedisAccess,
  role: string,
  mustNotEvict: boolean,
): Promise<Finding[]> {
  const client = newRedis(target, access, DOCTOR_OPTIONS, { slotsRefreshInterval: 0 }) as Cluster;
  client.on('error', () => undefined);
  client.on('node error', () => undefined);
  const check = `redis (${role})`;
  const where = describeRedisTarget(target);
  try {
    await withTimeout(client.connect(), 5000, 'cluster connect');
    const masters = client.nodes('master');
    if (masters.length === 0) return [{ ok: false, check, message: `${where}: no master known` }];
    return await Promise.all(masters.map((node) => checkClusterMaster(node, check, mustNotEvict)));
  } catch (err) {
    return [{ ok: false, check, message: `${where} unreachable or not ready (cluster_state not ok): ${(err as Error).message}` }];
  } finally {
    client.disconnect();
  }
}

async function checkClusterMaster(node: Redis, check: string, mustNotEvict: boolean): Promise<Finding> {
  const where = `master ${node.options.host}:${node.options.port}`;
  try {
    const info = await node.info('all');
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1] ?? 'unknown';
    const aof = /aof_enabled:1/.test(info);
    // The RDB save points are not in INFO; CONFIG may be renamed away, and then they stay unknown.
    const save = await node.config('GET', 'save').then(
      (reply) => String(reply[1] ?? ''),
      () => undefined,
    );
    const persistence =
      [aof ? 'aof' : '', save ? `rdb (save ${save})` : ''].filter(Boolean).join(' + ') || (save === undefined ? 'no aof, rdb unknown' : 'none');
    const problems: string[] = [];
    if (mustNotEvict && policy !== 'noeviction') problems.push(evictionProblem(where, policy));
    if (mustNotEvict && !aof && save === '')
      problems.push(
        `${where} persists nothing (no AOF, no RDB save points): restarted before its replica takes over, it serves its slots empty and every revocation it held is forgotten. Turn on appendonly.`,
      );
    if (problems.length > 0) return { ok: false, check, message: problems.join(' ') };
    return { ok: true, check, message: `${where} reachable, maxmemory-policy ${policy}, persistence ${persistence}` };
  } catch (err) {
    return { ok: false, check, message: `${where} unreachable: ${(err as Error).message}` };
  }
}

/** The Redis checks of one role, whatever the topology: one finding, or one per Cluster master. */
export async function checkRedisTopology(config: Config, target: RedisTarget, role: string, mustNotEvict: boolean): Promise<Finding[]> {
  if (target.kind === 'cluster') return checkRedisCluster(target, { tlsCa: config.redisTlsCa, natMap: config.redisClusterNatMap }, role, mustNotEvict);
  return [await checkRedis(target, config.redisTlsCa, role, mustNotEvict)];
}

/**
 * Connects as the app does (the statement timeout as a start-up parameter unless
 * DB_TRANSACTION_POOLING says a transaction pooler is in front), and checks that behind a pooler
 * the role brings a server-side statement timeout of its own.
 */
export async function checkDatabase(config: Pick<Config, 'databaseUrl' | 'dbTransactionPooling' | 'dbStatementTimeoutMs'>): Promise<Finding> {
  const where = redactString(config.databaseUrl!);
  const client = new pg.Client({
    connectionString: config.databaseUrl,
    connectionTimeoutMillis: 3000,
    ...(config.dbTransactionPooling ? {} : { statement_timeout: config.dbStatementTimeoutMs }),
  });
  try {
    await client.connect();
    const { rows } = await client.query<{ statement_timeout: string }>('SHOW statement_timeout');
    const timeout = rows[0]?.statement_timeout;
    if (config.dbTransactionPooling && timeout === '0') {
      return {
        ok: false,
        check: 'database',
        message: `${where} reachable, but with DB_TRANSACTION_POOLING=true the server-side statement timeout is the database role's, and it has none: a statement the app gave up on keeps running. Set it: ALTER ROLE <role> SET statement_timeout = '${config.dbStatementTimeoutMs}ms' (docs/operations.md, PgBouncer).`,
      };
    }
    return { ok: true, check: 'database', message: `${where} reachable, statement_timeout ${timeout}` };
  } catch (err) {
    const message = (err as Error).message;
    const hint = /unsupported startup parameter/.test(message) ? ' (a pooler in transaction mode is in front: set DB_TRANSACTION_POOLING=true)' : '';
    return { ok: false, check: 'database', message: `${where} unreachable: ${message}${hint}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface Pm2App {
  exec_mode?: string;
  wait_ready?: boolean;
  kill_timeout?: number;
  listen_timeout?: number;
}

function checkPm2(file: string, env: Env, config: Config): Finding[] {
  if (!existsSync(file)) return [{ ok: false, check: 'pm2', message: `${file} not found` }];
  // The process file reads SHUTDOWN_* from the environment, as PM2 would when loading it.
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let apps: Pm2App[];
  try {
    const resolved = path.resolve(file);
    delete require.cache[resolved];
    // eslint-disable-next-line @typescript-eslint/no-require-imports, security/detect-non-literal-require -- the operator's PM2 process file, loaded as PM2 loads it (CommonJS, by path)
    apps = (require(resolved) as { apps?: Pm2App[] }).apps ?? [];
  } catch (err) {
    return [{ ok: false, check: 'pm2', message: `${file} cannot be loaded: ${(err as Error).message}` }];
  } finally {
    process.env = saved;
  }
  const app = apps[0];
  if (!app) return [{ ok: false, check: 'pm2', message: `${file} defines no app` }];
  const findings: Finding[] = [];
  const needed = config.shutdownDrainMs + config.shutdownTimeoutMs;
  if (typeof app.kill_timeout !== 'number' || app.kill_timeout <= needed) {
    findings.push({
      ok: false,
      check: 'pm2',
      message: `kill_timeout ${app.kill_timeout ?? 1600} ms is not longer than the drain (${config.shutdownDrainMs} ms) plus the shutdown timeout (${config.shutdownTimeoutMs} ms): PM2 would kill workers with requests in flight.`,
    });
  }
  if (app.exec_mode !== 'cluster' && app.exec_mode !== 'cluster_mode') {
    findings.push({ ok: false, check: 'pm2', message: `exec_mode is ${app.exec_mode ?? 'fork'}: zero-downtime reload needs cluster mode.` });
  }
  if (app.wait_ready !== true) {
    findings.push({
      ok: false,
      check: 'pm2',
      message: 'wait_ready is off: a reload would send traffic to workers before they connected to Redis and PostgreSQL.',
    });
  }
  if (findings.length === 0) findings.push({ ok: true, check: 'pm2', message: `cluster mode, wait_ready, kill_timeout ${app.kill_timeout} ms > ${needed} ms` });
  return findings;
}

function checkNginx(dir: string, config: Config): Finding[] {
  const site = path.join(dir, 'conf.d/rampart.conf');
  const upstream = path.join(dir, 'rampart/upstream.conf');
  if (!existsSync(site)) return [{ ok: false, check: 'nginx', message: `${site} not found` }];
  const text = readFileSync(site, 'utf8');
  const findings: Finding[] = [];
  const sizes = [...text.matchAll(/^\s*client_max_body_size\s+(\S+);/gm)].map((m) => m[1]!);
  if (sizes.length === 0) {
    findings.push({
      ok: false,
      check: 'nginx',
      message: `${site} sets no client_max_body_size: nginx's default (1m) differs from BODY_LIMIT (${bytes.format(config.bodyLimitBytes)}).`,
    });
  }
  for (const size of sizes) {
    const nginxBytes = bytes.parse(size.replace(/([kmg])$/i, '$1b'));
    if (nginxBytes !== config.bodyLimitBytes) {
      findings.push({
        ok: false,
        check: 'nginx',
        message: `client_max_body_size ${size} (${nginxBytes} bytes) differs from BODY_LIMIT (${config.bodyLimitBytes} bytes): ${nginxBytes !== null && nginxBytes < config.bodyLimitBytes ? 'clients get nginx 413s below the documented limit' : 'nginx accepts bodies the app will refuse'}.`,
      });
    }
  }
  if (existsSync(upstream)) {
    const keepalive = /keepalive_timeout\s+(\d+)s?;/.exec(readFileSync(upstream, 'utf8'))?.[1];
    if (keepalive !== undefined && Number(keepalive) * 1000 >= config.keepAliveTimeoutMs) {
      findings.push({
        ok: false,
        check: 'nginx',
        message: `upstream keepalive_timeout ${keepalive}s is not below the app's KEEP_ALIVE_TIMEOUT_MS (${config.keepAliveTimeoutMs} ms): nginx may reuse a connection the app is closing (random 502s).`,
      });
    }
  }
  if (findings.length === 0)
    findings.push({ ok: true, check: 'nginx', message: `body limit ${sizes.join(', ')} = BODY_LIMIT; upstream keep-alive below the app's` });
  return findings;
}

export async function runChecks(options: Options): Promise<Finding[]> {
  let env: Env = { ...process.env };
  if (options.envFile) {
    if (!existsSync(options.envFile)) return [{ ok: false, check: 'configuration', message: `${options.envFile} not found` }];
    env = parseEnvFile(readFileSync(options.envFile, 'utf8'));
  }
  let kubernetes: Finding[] | undefined;
  if (options.kubernetes) {
    const checked = checkKubernetes(options.kubernetes, options.envFile ? env : {});
    kubernetes = checked.findings;
    // The pods run with the overlay's ConfigMap and the Secret (the env file's values).
    env = { ...checked.env, ...env };
  }
  env.NODE_ENV = 'production';
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Without a valid configuration the other checks would guess; report what is wrong first.
    return [...err.problems.map((p) => ({ ok: false, check: 'configuration', message: p })), ...(kubernetes ?? [])];
  }
  const findings: Finding[] = [{ ok: true, check: 'configuration', message: 'every variable valid for production' }];
  findings.push(checkTrustProxy(config));
  if (config.corsOrigins.some((o) => o.startsWith('http://'))) {
    findings.push({
      ok: false,
      check: 'cors',
      message: `CORS_ORIGINS allows plain-HTTP origins (${config.corsOrigins.filter((o) => o.startsWith('http://')).join(', ')}): a network attacker could act as them.`,
    });
  }
  if (options.connect) {
    findings.push(...(await checkRedisTopology(config, config.redisTarget!, 'security', true)));
    if (config.cacheRedisTarget && config.cacheRedisUrl !== config.redisUrl)
      findings.push(...(await checkRedisTopology(config, config.cacheRedisTarget, 'cache', false)));
    findings.push(await checkDatabase(config));
  }
  if (kubernetes) return [...findings, ...kubernetes];
  findings.push(...checkPm2(options.ecosystem, env, config));
  findings.push(...checkNginx(options.nginxDir, config));
  return findings;
}

/** The overlay, rendered and held to the same rules as CI (src/cli/kubernetes-policy.ts). */
function checkKubernetes(dir: string, secretEnv: Env): { findings: Finding[]; env: Env } {
  let objects: K8sObject[];
  try {
    objects = renderOverlay(dir);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    return { findings: [{ ok: false, check: 'kubernetes', message: `kubectl kustomize ${dir} failed: ${stderr || (err as Error).message}` }], env: {} };
  }
  const container = appContainer(objects);
  const env = container ? containerEnv(objects, container) : {};
  const problems = kubernetesProblems(objects, secretEnv);
  const findings = problems.map((message) => ({ ok: false, check: 'kubernetes', message }));
  if (findings.length === 0) findings.push({ ok: true, check: 'kubernetes', message: `${dir}: ${objects.length} objects follow the rules` });
  return { findings, env };
}

async function main(): Promise<number> {
  let options: Options | 'help';
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`check-production: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const findings = await runChecks(options);
  for (const f of findings) process.stdout.write(`${f.ok ? 'ok     ' : 'PROBLEM'} ${f.check}: ${f.message}\n`);
  const problems = findings.filter((f) => !f.ok).length;
  process.stdout.write(problems === 0 ? 'No problems found.\n' : `${problems} problem(s) found.\n`);
  return problems === 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`check-production failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
