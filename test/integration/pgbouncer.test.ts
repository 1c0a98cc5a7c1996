// Through a real PgBouncer in transaction pooling (started here, on a free port): why
// DB_TRANSACTION_POOLING exists, the server-side timeout from the role, a pooler that hangs, and
// the integration suite's database tests (the Database contract, parallel migrations, items,
// users, auth) run again in a child vitest with DATABASE_URL pointing at PgBouncer.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDatabase } from '../../src/cli/check-production';
import { createPostgres } from '../../src/lib/db/postgres';
import { createTestContext, type TestContext } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { captureLogger } from '../helpers/log-capture';
import { HAS_PGBOUNCER, NO_PGBOUNCER_REASON, TestPgBouncer } from '../helpers/pgbouncer';
import { DATABASE_URL, NO_DATABASE_REASON } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const { logger } = captureLogger();

/** The files whose tests need the database; each isolates itself (own database, own Redis prefix). */
const DATABASE_TEST_FILES = [
  'test/integration/database.test.ts',
  'test/integration/items.test.ts',
  'test/integration/users.test.ts',
  'test/integration/auth.test.ts',
];
/** Generous: four files in a child vitest on a loaded two-core machine; about 90 s measured. */
const SUITE_TIMEOUT_MS = 480_000;

const reason = !DATABASE_URL ? NO_DATABASE_REASON : !HAS_PGBOUNCER ? NO_PGBOUNCER_REASON : '';

interface VitestReport {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: { name: string; assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

/** Runs test files in a child vitest with extra environment; its JSON report and output. */
async function runVitest(files: string[], env: Record<string, string>): Promise<{ code: number | null; report: VitestReport; output: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rampart-vitest-'));
  const reportFile = path.join(dir, 'report.json');
  try {
    const child = spawn(
      process.execPath,
      [path.join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', ...files, '--reporter=dot', '--reporter=json', `--outputFile.json=${reportFile}`],
      {
        cwd: ROOT,
        // Under CI the project's config adds its own JSON reporter, whose file would win over
        // --outputFile: both go to the same file.
        env: { ...process.env, ...env, RAMPART_TEST_NO_BUILD: '1', CI_RESULTS_FILE: reportFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-50_000)));
    child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-50_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), SUITE_TIMEOUT_MS - 10_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(timer);
    const report = JSON.parse(await readFile(reportFile, 'utf8').catch(() => '{"testResults":[]}')) as VitestReport;
    return { code, report, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe.skipIf(reason !== '')(`through PgBouncer in transaction pooling${reason ? ` [${reason}]` : ''}`, () => {
  let bouncer: TestPgBouncer;
  let testDb: TestDatabase;

  beforeAll(async () => {
    bouncer = await TestPgBouncer.create(DATABASE_URL!);
    testDb = await createTestDatabase();
  });
  afterAll(async () => {
    await bouncer?.close();
    await testDb?.drop();
  });

  const throughBouncer = () => bouncer.url(new URL(testDb.url).pathname.slice(1));

  it('refuses statement_timeout as a start-up parameter; with DB_TRANSACTION_POOLING nothing is sent and it connects', async () => {
    const direct = createPostgres({ url: throughBouncer(), poolMax: 1, statementTimeoutMs: 800, logger });
    const pooled = createPostgres({ url: throughBouncer(), poolMax: 1, statementTimeoutMs: 800, transactionPooling: true, logger });
    try {
      // PgBouncer answers with SQLSTATE 08P01: for a request, the database is unavailable (503).
      await expect(direct.query('SELECT 1')).rejects.toMatchObject({
        code: 'service_unavailable',
        cause: { message: expect.stringContaining('unsupported startup parameter: statement_timeout') },
      });
      expect((await pooled.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await Promise.all([direct.close(), pooled.close()]);
    }
  });

  it('takes the server-side statement timeout from the role, and cuts a statement off with it (503)', async () => {
    const db = await createTestDatabase();
    const admin = createPostgres({ url: db.url, poolMax: 1, statementTimeoutMs: 800, logger });
    const pooled = createPostgres({
      url: bouncer.url(new URL(db.url).pathname.slice(1)),
      poolMax: 1,
      statementTimeoutMs: 800,
      transactionPooling: true,
      logger,
    });
    try {
      await admin.exec(`ALTER ROLE CURRENT_USER IN DATABASE ${new URL(db.url).pathname.slice(1)} SET statement_timeout = '300ms'`);
      expect((await pooled.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('300ms');
      const t0 = Date.now();
      await expect(pooled.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: 'service_unavailable', cause: { code: '57014' } });
      expect(Date.now() - t0).toBeLessThan(1000); // the role's 300 ms, well before the client's 1000 ms
    } finally {
      await Promise.all([admin.close(), pooled.close()]);
      await db.drop();
    }
  });

  it('is checked by the doctor: a direct configuration is told to set DB_TRANSACTION_POOLING, a role without a timeout is reported', async () => {
    const db = await createTestDatabase();
    const name = new URL(db.url).pathname.slice(1);
    const admin = createPostgres({ url: db.url, poolMax: 1, statementTimeoutMs: 800, logger });
    const config = { databaseUrl: bouncer.url(name), dbStatementTimeoutMs: 800 };
    try {
      const direct = await checkDatabase({ ...config, dbTransactionPooling: false });
      expect(direct).toMatchObject({ ok: false, check: 'database', message: expect.stringContaining('set DB_TRANSACTION_POOLING=true') });
      const noTimeout = await checkDatabase({ ...config, dbTransactionPooling: true });
      expect(noTimeout).toMatchObject({ ok: false, message: expect.stringContaining("ALTER ROLE <role> SET statement_timeout = '800ms'") });
      await admin.exec(`ALTER ROLE CURRENT_USER IN DATABASE ${name} SET statement_timeout = '800ms'`);
      // PgBouncer's server connections keep the settings they logged in with: renew them.
      await bouncer.admin('RECONNECT');
      expect(await checkDatabase({ ...config, dbTransactionPooling: true })).toMatchObject({
        ok: true,
        message: expect.stringMatching(/reachable, statement_timeout 800ms$/),
      });
      // Connecting directly, the app's own start-up parameter is what the server reports.
      expect(await checkDatabase({ ...config, databaseUrl: db.url, dbTransactionPooling: false })).toMatchObject({
        ok: true,
        message: expect.stringMatching(/statement_timeout 800ms$/),
      });
    } finally {
      await admin.close();
      await db.drop();
    }
  });

  describe('the app over PgBouncer', () => {
    let ctx: TestContext;
    beforeAll(async () => {
      ctx = await createTestContext({ databaseUrl: throughBouncer(), env: { DB_TRANSACTION_POOLING: 'true' } });
    });
    afterAll(async () => ctx?.close());

    it('migrates and serves through it; a paused PgBouncer gets 503 with Retry-After within 1.5 s, and recovery needs no restart', async () => {
      expect((await request(ctx.app).get('/api/v1/items')).status).toBe(200);
      bouncer.pause();
      try {
        const t0 = Date.now();
        // Uncached: this page was never asked for. The wait is the connection timeout (800 ms).
        const res = await request(ctx.app).get('/api/v1/items?page=9');
        const elapsed = Date.now() - t0;
        expect([res.status, res.body.error?.code, res.headers['retry-after']]).toEqual([503, 'service_unavailable', '5']);
        expect(elapsed).toBeLessThan(1500);
      } finally {
        bouncer.resume();
      }
      expect((await request(ctx.app).get('/api/v1/items?page=9')).status).toBe(200);
    });
  });

  it(
    "passes the integration suite's database tests with DATABASE_URL pointing at it",
    async () => {
      const t0 = Date.now();
      const { code, report, output } = await runVitest(DATABASE_TEST_FILES, { DATABASE_URL: bouncer.url(), DB_TRANSACTION_POOLING: 'true' });
      const results = report.testResults.flatMap((f) => f.assertionResults.map((a) => ({ file: path.relative(ROOT, f.name), ...a })));
      const failed = results.filter((r) => r.status === 'failed');
      expect(
        failed.map((r) => `${r.file}: ${r.fullName}\n${r.failureMessages.join('\n').slice(0, 2000)}`),
        output.slice(-5000),
      ).toEqual([]);
      expect(code, output.slice(-5000)).toBe(0);
      // Every file ran, with its tests; a skip is allowed only where the test says it is about a direct connection.
      expect(new Set(results.map((r) => r.file))).toEqual(new Set(DATABASE_TEST_FILES));
      expect(report.numPassedTests).toBeGreaterThan(100);
      expect(results.filter((r) => r.status !== 'passed').map((r) => r.fullName)).toEqual([expect.stringContaining('[skipped: DATABASE_URL is a pooler]')]);
      console.info(`database tests through PgBouncer: ${report.numPassedTests} passed in ${Math.round((Date.now() - t0) / 1000)} s`);
    },
    SUITE_TIMEOUT_MS,
  );
});
