// scripts/gen-secrets and scripts/check-production (the doctor): each misconfiguration the doctor
// knows is planted in a copy of a good configuration and must be reported, clearly.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runChecks } from '../../src/cli/check-production';
import { DATABASE_URL, REDIS_URL } from '../helpers/services';
import { blackHole, freePort, HAS_REDIS_SERVER, TestRedisServer } from '../helpers/redis-server';

const ROOT = path.resolve(__dirname, '../..');

describe('scripts/gen-secrets', () => {
  it('prints six distinct 32-byte secrets as KEY=hex lines', () => {
    const out = execFileSync(path.join(ROOT, 'scripts/gen-secrets'), { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    expect(lines.map((l) => l.split('=')[0])).toEqual([
      'JWT_ACCESS_SECRET',
      'JWT_REFRESH_SECRET',
      'OPS_TOKEN',
      'REDIS_PASSWORD',
      'REDIS_CACHE_PASSWORD',
      'POSTGRES_PASSWORD',
    ]);
    const values = lines.map((l) => l.split('=')[1]!);
    for (const v of values) expect(v).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(values).size).toBe(6);
    expect(execFileSync(path.join(ROOT, 'scripts/gen-secrets'), { encoding: 'utf8' })).not.toBe(out);
  });

  it('has --help and refuses unknown arguments', () => {
    expect(execFileSync(path.join(ROOT, 'scripts/gen-secrets'), ['--help'], { encoding: 'utf8' })).toMatch(/Usage/);
    const bad = spawnSync(path.join(ROOT, 'scripts/gen-secrets'), ['--nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown argument/);
  });
});

describe('check-production (the doctor)', () => {
  let work: string;
  let redis: TestRedisServer | undefined;
  const secrets = ['a', 'b', 'c'].map((c) => c.repeat(40));
  let good: Record<string, string>;

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'rampart-doctor-'));
    cpSync(path.join(ROOT, 'nginx'), path.join(work, 'nginx'), { recursive: true });
    cpSync(path.join(ROOT, 'ecosystem.config.js'), path.join(work, 'ecosystem.config.js'));
    // A Redis of the test's own, so its eviction policy can be set freely.
    if (HAS_REDIS_SERVER) redis = await TestRedisServer.create();
    good = {
      REDIS_URL: redis?.url ?? REDIS_URL ?? 'redis://127.0.0.1:6379',
      DATABASE_URL: DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      JWT_ACCESS_SECRET: secrets[0]!,
      JWT_REFRESH_SECRET: secrets[1]!,
      OPS_TOKEN: secrets[2]!,
      CORS_ORIGINS: 'https://app.example.com',
      TRUST_PROXY: 'loopback',
    };
  });
  afterAll(async () => {
    await redis?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  function envFile(env: Record<string, string | undefined>): string {
    const file = path.join(work, `env-${Math.random().toString(36).slice(2)}`);
    writeFileSync(
      file,
      Object.entries(env)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${v}`)
        .join('\n'),
    );
    return file;
  }

  const run = (env: Record<string, string | undefined>, extra: Partial<{ ecosystem: string; nginxDir: string; connect: boolean }> = {}) =>
    runChecks({
      envFile: envFile(env),
      ecosystem: path.join(work, 'ecosystem.config.js'),
      nginxDir: path.join(work, 'nginx'),
      connect: Boolean(DATABASE_URL) && Boolean(redis),
      ...extra,
    });

  const problems = async (...args: Parameters<typeof run>) => (await run(...args)).filter((f) => !f.ok).map((f) => `${f.check}: ${f.message}`);

  it('passes the shipped configuration with good settings', async () => {
    expect(await problems(good)).toEqual([]);
  });

  it('runs as a script, exit 0 when all is well, 1 with problems, --help', () => {
    const script = path.join(ROOT, 'scripts/check-production');
    const common = ['--ecosystem', path.join(work, 'ecosystem.config.js'), '--nginx-dir', path.join(work, 'nginx'), '--no-connect'];
    const ok = spawnSync(script, ['--env-file', envFile(good), ...common], { encoding: 'utf8' });
    expect(ok.stdout).toMatch(/No problems found/);
    expect(ok.status).toBe(0);
    const bad = spawnSync(script, ['--env-file', envFile({ ...good, JWT_ACCESS_SECRET: 'short' }), ...common], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/PROBLEM configuration: JWT_ACCESS_SECRET: must be at least 32 bytes/);
    expect(bad.stdout).not.toContain('short');
    expect(spawnSync(script, ['--help'], { encoding: 'utf8' }).stdout).toMatch(/Usage/);
    expect(spawnSync(script, ['--bogus'], { encoding: 'utf8' }).status).toBe(2);
  });

  it.each([
    ['a missing secret', { JWT_REFRESH_SECRET: undefined }, /JWT_REFRESH_SECRET: required in production/],
    ['a weak secret', { JWT_ACCESS_SECRET: 'weak' }, /JWT_ACCESS_SECRET: must be at least 32 bytes/],
    ['equal secrets', { JWT_REFRESH_SECRET: 'a'.repeat(40) }, /must differ/],
    ['TRUST_PROXY=true', { TRUST_PROXY: 'true' }, /TRUST_PROXY: must not be true/],
    ['TRUST_PROXY off behind nginx', { TRUST_PROXY: 'false' }, /one rate-limit bucket/],
    ['TRUST_PROXY trusting everything', { TRUST_PROXY: '0.0.0.0/0' }, /TRUST_PROXY: must not trust every address/],
    ['a CORS wildcard', { CORS_ORIGINS: '*' }, /CORS_ORIGINS: must list exact origins/],
    ['a plain-HTTP CORS origin', { CORS_ORIGINS: 'http://app.example.com' }, /plain-HTTP origins/],
    ['diagnostic routes', { ENABLE_DIAGNOSTIC_ROUTES: 'true' }, /ENABLE_DIAGNOSTIC_ROUTES: refused in production/],
  ])('reports %s', async (_name, change, expected) => {
    const found = await problems({ ...good, ...change }, { connect: false });
    expect(found.join('\n')).toMatch(expected);
  });

  it('reports a PM2 kill_timeout shorter than the drain plus the shutdown timeout', async () => {
    // The shipped file derives kill_timeout from the same variables, so it follows them...
    expect(await problems({ ...good, SHUTDOWN_TIMEOUT_MS: '30000' }, { connect: false })).toEqual([]);
    // ...a hand-set one does not.
    const fixed = path.join(work, 'fixed.config.js');
    writeFileSync(fixed, "module.exports = { apps: [{ name: 'x', script: 'dist/server.js', exec_mode: 'cluster', wait_ready: true, kill_timeout: 5000 }] };");
    const found = await problems({ ...good, SHUTDOWN_TIMEOUT_MS: '30000' }, { connect: false, ecosystem: fixed });
    expect(found.join('\n')).toMatch(/kill_timeout 5000 ms is not longer than the drain \(1500 ms\) plus the shutdown timeout \(30000 ms\)/);
    const fork = path.join(work, 'fork.config.js');
    writeFileSync(fork, "module.exports = { apps: [{ name: 'x', script: 'dist/server.js' }] };");
    const forkFound = (await problems(good, { connect: false, ecosystem: fork })).join('\n');
    expect(forkFound).toMatch(/kill_timeout 1600 ms/);
    expect(forkFound).toMatch(/exec_mode is fork/);
    expect(forkFound).toMatch(/wait_ready is off/);
  });

  it('reports an nginx body limit that differs from BODY_LIMIT', async () => {
    expect((await problems({ ...good, BODY_LIMIT: '1mb' }, { connect: false })).join('\n')).toMatch(
      /client_max_body_size 100k \(102400 bytes\) differs from BODY_LIMIT \(1048576 bytes\): clients get nginx 413s/,
    );
    const site = path.join(work, 'nginx/conf.d/rampart.conf');
    const original = readFileSync(site, 'utf8');
    writeFileSync(site, original.replace('client_max_body_size 100k;', 'client_max_body_size 10m;'));
    try {
      expect((await problems(good, { connect: false })).join('\n')).toMatch(/nginx accepts bodies the app will refuse/);
    } finally {
      writeFileSync(site, original);
    }
  });

  it("reports an upstream keep-alive not shorter than the app's", async () => {
    expect((await problems({ ...good, KEEP_ALIVE_TIMEOUT_MS: '30000' }, { connect: false })).join('\n')).toMatch(/upstream keepalive_timeout 60s/);
  });

  describe.skipIf(!DATABASE_URL || !HAS_REDIS_SERVER)(
    `with connections${DATABASE_URL && HAS_REDIS_SERVER ? '' : ' [skipped: needs DATABASE_URL and redis-server]'}`,
    () => {
      it('reports a Redis eviction policy that can drop security keys', async () => {
        const admin = new Redis(redis!.url);
        try {
          for (const policy of ['allkeys-lru', 'volatile-ttl']) {
            await admin.config('SET', 'maxmemory-policy', policy);
            expect((await problems(good)).join('\n')).toMatch(new RegExp(`maxmemory-policy ${policy}`));
          }
        } finally {
          await admin.config('SET', 'maxmemory-policy', 'noeviction');
          admin.disconnect();
        }
      });

      it('reports an unreachable Redis and database, without their passwords', async () => {
        const port = await freePort();
        const hole = await blackHole();
        try {
          const found = (
            await problems({ ...good, REDIS_URL: `redis://:hunter2-secret@127.0.0.1:${port}`, DATABASE_URL: `postgres://u:pg-secret@127.0.0.1:${hole.port}/x` })
          ).join('\n');
          expect(found).toMatch(/redis \(security\): .* unreachable/);
          expect(found).toMatch(/database: .* unreachable/);
          expect(found).not.toMatch(/hunter2-secret|pg-secret/);
        } finally {
          await hole.close();
        }
      });
    },
  );
});
