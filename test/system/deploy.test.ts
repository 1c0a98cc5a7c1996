// scripts/deploy and scripts/rollback against a temporary deployment root, with a PM2 daemon of
// the test's own, real PostgreSQL (backups with pg_dump) and Redis.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteRedisPrefix } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { fresh, ROOT } from '../helpers/pm2';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, REDIS_URL, toolAvailable } from '../helpers/services';

const HAS_PG_DUMP = toolAvailable(spawnSync('pg_dump', ['--version']).status === 0, 'pg_dump (Debian package postgresql-client)');
const CAN_RUN = Boolean(DATABASE_URL && REDIS_URL) && HAS_PG_DUMP;
const REASON = HAS_PG_DUMP ? 'skipped: needs DATABASE_URL and REDIS_URL' : 'skipped: pg_dump not installed (Debian package postgresql-client)';

describe('operator scripts: usage', () => {
  it.each(['deploy', 'rollback'])('%s has --help and refuses unknown arguments', (name) => {
    const script = path.join(ROOT, 'scripts', name);
    expect(execFileSync(script, ['--help'], { encoding: 'utf8' })).toMatch(/^Usage: scripts\//);
    const bad = spawnSync(script, ['--frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/unknown argument '--frobnicate'/);
  });

  it('deploy fails clearly without an environment file, changing nothing', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-deploy-'));
    try {
      const r = spawnSync(path.join(ROOT, 'scripts/deploy'), ['--dir', dir, '--skip-backup'], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/environment file .*\.env\.production not found/);
      expect(existsSync(path.join(dir, 'current'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rollback fails clearly when nothing is deployed', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-deploy-'));
    try {
      const r = spawnSync(path.join(ROOT, 'scripts/rollback'), ['--dir', dir], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/nothing is deployed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!CAN_RUN)(`deploy and rollback with PM2${CAN_RUN ? '' : ` [${REASON}]`}`, () => {
  let work: string;
  let source: string;
  let deployDir: string;
  let pm2Home: string;
  let db: TestDatabase;
  let port: number;
  const appName = `rampart-deploy-${randomUUID().slice(0, 8)}`;
  const prefix = `rampart-deploy-${randomUUID().slice(0, 8)}:`;

  const env = () => ({ ...process.env, PM2_HOME: pm2Home, PM2_APP_NAME: appName, CI: '', NODE_ENV: '' });
  const run = (script: string, args: string[]) =>
    spawnSync(path.join(source, 'scripts', script), ['--dir', deployDir, ...args], { encoding: 'utf8', env: env(), timeout: 240_000 });
  const deploy = () => run('deploy', ['--source', source, '--no-install', '--health-timeout', '25']);
  const version = async () => JSON.parse((await fresh(port, 'GET', '/health/detailed')).body).version as string;
  const setVersion = (v: string) => {
    const file = path.join(source, 'package.json');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"version": "[^"]+"/, `"version": "${v}"`));
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'rampart-deploy-'));
    source = path.join(work, 'source');
    deployDir = path.join(work, 'srv');
    pm2Home = path.join(work, 'pm2');
    mkdirSync(source);
    // The repository as a deploy would check it out, with its dependencies already installed.
    execFileSync('tar', ['-C', ROOT, '--exclude=./node_modules', '--exclude=./dist', '--exclude=./.git', '-cf', path.join(work, 'src.tar'), '.']);
    execFileSync('tar', ['-C', source, '-xf', path.join(work, 'src.tar')]);
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(source, 'node_modules'));
    db = await createTestDatabase();
    port = await freePort();
    mkdirSync(path.join(deployDir, 'shared'), { recursive: true });
    writeFileSync(
      path.join(deployDir, 'shared/.env.production'),
      [
        `PORT=${port}`,
        'HOST=127.0.0.1',
        `REDIS_URL=${REDIS_URL}`,
        `REDIS_KEY_PREFIX=${prefix}`,
        `DATABASE_URL=${db.url}`,
        `JWT_ACCESS_SECRET=${randomBytes(32).toString('hex')}`,
        `JWT_REFRESH_SECRET=${randomBytes(32).toString('hex')}`,
        'CORS_ORIGINS=',
        'TRUST_PROXY=1',
        'LOG_LEVEL=warn',
        'PM2_INSTANCES=2',
        'PM2_LISTEN_TIMEOUT=8000',
        'SHUTDOWN_DRAIN_MS=500',
        'SHUTDOWN_TIMEOUT_MS=5000',
      ].join('\n'),
    );
  }, 60_000);

  afterAll(async () => {
    spawnSync(path.join(ROOT, 'node_modules/.bin/pm2'), ['kill'], { env: env(), timeout: 30_000 });
    rmSync(work, { recursive: true, force: true });
    await db?.drop();
    await deleteRedisPrefix(REDIS_URL!, prefix);
  }, 60_000);

  it('deploys, deploys again, rolls back, and rolls a broken release back by itself', async () => {
    const first = deploy();
    expect(first.status, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/is live/);
    expect(await version()).toBe('0.1.0');
    const releaseA = readlinkSync(path.join(deployDir, 'current'));

    setVersion('0.1.1');
    const second = deploy();
    expect(second.status, second.stdout + second.stderr).toBe(0);
    expect(await version()).toBe('0.1.1');
    const releaseB = readlinkSync(path.join(deployDir, 'current'));
    expect(releaseB).not.toBe(releaseA);
    expect(readdirSync(path.join(deployDir, 'releases'))).toHaveLength(2);
    const backups = readdirSync(path.join(deployDir, 'backups'));
    expect(backups).toHaveLength(2);
    for (const b of backups) expect(statSync(path.join(deployDir, 'backups', b)).size).toBeGreaterThan(100);
    // Production dependencies only in a release.
    expect(existsSync(path.join(releaseB, 'node_modules/express'))).toBe(true);
    expect(existsSync(path.join(releaseB, 'node_modules/typescript'))).toBe(false);

    const back = run('rollback', []);
    expect(back.status, back.stdout + back.stderr).toBe(0);
    expect(readlinkSync(path.join(deployDir, 'current'))).toBe(releaseA);
    expect(await version()).toBe('0.1.0');

    // A release whose server cannot start: the deploy must put the previous one back.
    setVersion('0.2.0');
    const serverTs = path.join(source, 'src/server.ts');
    writeFileSync(
      serverTs,
      readFileSync(serverTs, 'utf8').replace(
        'async function main(): Promise<void> {',
        "async function main(): Promise<void> {\n  if (Date.now() > 0) throw new Error('deliberately broken release');",
      ),
    );
    const broken = deploy();
    expect(broken.status).toBe(1);
    expect(broken.stderr).toMatch(/rolled back to/);
    expect(readlinkSync(path.join(deployDir, 'current'))).toBe(releaseA);
    expect((await fresh(port, 'GET', '/health/ready')).status).toBe(200);
    expect(await version()).toBe('0.1.0');
  }, 600_000);
});
