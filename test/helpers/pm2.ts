// Runs the app under a real PM2 daemon of its own (own PM2_HOME), started and killed by the test.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
const PM2 = path.join(ROOT, 'node_modules/.bin/pm2');

/** The node flags ecosystem.config.js gives PM2's workers (the Docker image and the bench use the same). */
export function productionNodeArgs(): string[] {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the PM2 process file is CommonJS, loaded as PM2 loads it
  return (require(path.join(ROOT, 'ecosystem.config.js')) as { apps: { node_args: string[] }[] }).apps[0]!.node_args;
}

export interface Pm2Instance {
  pmId: number;
  pid: number;
  status: string;
  /** The node flags PM2 started the worker with (ecosystem.config.js node_args). */
  nodeArgs: string[];
}

export class Pm2App {
  readonly home = mkdtempSync(path.join(os.tmpdir(), 'rampart-pm2-'));
  constructor(
    readonly name: string,
    private readonly env: Record<string, string>,
  ) {}

  private run(args: string[], timeout = 60_000): string {
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // The test runner's own variables must not leak into the workers' configuration.
      if (v !== undefined && !/^(NODE_ENV|VITEST.*|CI|REDIS_URL|DATABASE_URL|CACHE_REDIS_URL|PORT)$/.test(k)) env[k] = v;
    }
    return execFileSync(PM2, args, { cwd: ROOT, env: { ...env, ...this.env, PM2_HOME: this.home, PM2_APP_NAME: this.name }, timeout, encoding: 'utf8' });
  }

  /** `production` applies the process file's env_production (NODE_ENV=production). */
  start(envName?: 'production'): void {
    this.run(['start', 'ecosystem.config.js', ...(envName ? ['--env', envName] : [])]);
  }

  stop(): void {
    this.run(['stop', this.name]);
  }

  reload(): void {
    this.run(['reload', this.name], 120_000);
  }

  instances(): Pm2Instance[] {
    const list = JSON.parse(this.run(['jlist'])) as { pm_id: number; pid: number; name: string; pm2_env: { status: string; node_args?: string[] } }[];
    return list.filter((p) => p.name === this.name).map((p) => ({ pmId: p.pm_id, pid: p.pid, status: p.pm2_env.status, nodeArgs: p.pm2_env.node_args ?? [] }));
  }

  logs(lines = 80): string {
    try {
      return this.run(['logs', this.name, '--lines', String(lines), '--nostream', '--raw']);
    } catch {
      return '';
    }
  }

  kill(): void {
    try {
      this.run(['kill'], 30_000); // this test's own daemon only (its PM2_HOME)
    } finally {
      rmSync(this.home, { recursive: true, force: true });
    }
  }
}

/** Every worker online, and readiness 200 on four fresh connections (so from each of two workers). */
export async function workersReady(app: Pm2App, port: number, workers = 2): Promise<boolean> {
  const list = app.instances();
  if (list.length !== workers || !list.every((i) => i.status === 'online')) return false;
  for (let i = 0; i < 2 * workers; i++) if ((await fresh(port, 'GET', '/health/ready')).status !== 200) return false;
  return true;
}

/** Environment for a 2-worker cluster in system tests: real services, diagnostics on, quiet logs. */
export function clusterEnv(port: number, redisUrl: string, databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PORT: String(port),
    PM2_INSTANCES: '2',
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
    JWT_ACCESS_SECRET: randomBytes(32).toString('hex'),
    JWT_REFRESH_SECRET: randomBytes(32).toString('hex'),
    ENABLE_DIAGNOSTIC_ROUTES: 'true',
    LOG_LEVEL: 'warn',
    RATE_LIMIT_API_MAX: '1000000',
    RATE_LIMIT_REGISTER_MAX: '1000',
    SHUTDOWN_DRAIN_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '8000',
    ...overrides,
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = any>(): T; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One request on a fresh connection (no keep-alive), so the cluster may pick any worker. */
export function fresh(port: number, method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent: false,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}), ...headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
