// Migrating at start-up over a database that is down, comes back, or refuses a migration: the gate
// in front of the app's database, the retries, and what is fatal when.
import { afterEach, describe, expect, it } from 'vitest';
import { serviceUnavailable } from '../../src/lib/errors';
import { migrateAtStart, type StartUpMigration } from '../../src/lib/db/start-up-migration';
import type { Database, Queryable } from '../../src/lib/db/types';
import { captureLogger } from '../helpers/log-capture';

const MIGRATIONS = [{ id: '0001_a', sql: 'CREATE TABLE a ()', checksum: 'c1' }];

/** A database whose migration transactions fail with each of `failures` in turn, then succeed. */
function fakeDatabase(failures: Error[]) {
  const calls = { transactions: 0, queries: 0 };
  const tx: Queryable = {
    query: <R>() => Promise.resolve({ rows: [] as R[], rowCount: 0 }),
    exec: () => Promise.resolve(),
  };
  const db: Database = {
    kind: 'postgres',
    query: <R>() => {
      calls.queries += 1;
      return Promise.resolve({ rows: [{ ok: true }] as R[], rowCount: 1 });
    },
    exec: () => Promise.resolve(),
    transaction: async (fn) => {
      calls.transactions += 1;
      const failure = failures.shift();
      if (failure !== undefined) throw failure;
      return fn(tx);
    },
    ping: () => Promise.resolve(1),
    close: () => Promise.resolve(),
  };
  return { db, calls };
}

const down = () => serviceUnavailable(new Error('connect ECONNREFUSED'));

async function until(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

let migration: StartUpMigration | undefined;
afterEach(() => migration?.stop());

describe('migrateAtStart', () => {
  it('migrates at once when the database answers, and hands back the database itself', async () => {
    const { db } = fakeDatabase([]);
    const log = captureLogger('debug');
    migration = await migrateAtStart(db, { logger: log.logger, onFatal: () => undefined, migrations: MIGRATIONS });
    expect(migration.done).toBe(true);
    expect(migration.db).toBe(db);
    expect(log.lines.map((l) => JSON.parse(l).message)).toEqual(['migrations applied']);
  });

  it('throws at start-up when a migration fails for another reason than an outage', async () => {
    const { db } = fakeDatabase([new Error('migration 0001_a was changed after it was applied')]);
    await expect(migrateAtStart(db, { logger: captureLogger().logger, onFatal: () => undefined, migrations: MIGRATIONS })).rejects.toThrow(/changed/);
  });

  it('with the database down, refuses every use with 503 until the migrations are applied, retrying in between', async () => {
    const { db, calls } = fakeDatabase([down(), down(), down()]);
    const log = captureLogger('debug');
    migration = await migrateAtStart(db, { logger: log.logger, onFatal: () => undefined, migrations: MIGRATIONS, retryMs: 10, maxRetryMs: 20 });
    expect(migration.done).toBe(false);
    const gated = migration.db;
    expect(gated).not.toBe(db);
    expect(gated.kind).toBe('postgres');
    for (const use of [() => gated.query('SELECT 1'), () => gated.exec('SELECT 1'), () => gated.transaction(() => Promise.resolve(1))]) {
      await expect(use()).rejects.toMatchObject({ code: 'service_unavailable', status: 503, headers: { 'Retry-After': '5' } });
    }
    await expect(gated.ping()).rejects.toThrow('database migrations pending');
    expect(calls.queries).toBe(0);
    await until(() => migration!.done);
    expect(calls.transactions).toBe(4); // three refusals, then the migration
    expect((await gated.query('SELECT 1')).rows).toEqual([{ ok: true }]);
    expect(await gated.ping()).toBe(1);
    await expect(gated.transaction(() => Promise.resolve('in'))).resolves.toBe('in');
    const messages = log.lines.map((l) => JSON.parse(l) as { level: string; message: string });
    expect(messages.map((m) => `${m.level} ${m.message}`)).toEqual([
      'warn database unreachable at start-up: serving without it (503 on database routes) and migrating once it answers',
      'info migrations applied',
      'info database reachable; migrations done, database routes serving',
    ]);
  });

  it('waits longer between each retry, up to the maximum', async () => {
    const { db, calls } = fakeDatabase([down(), down(), down(), down()]);
    const t0 = Date.now();
    migration = await migrateAtStart(db, { logger: captureLogger().logger, onFatal: () => undefined, migrations: MIGRATIONS, retryMs: 40, maxRetryMs: 80 });
    await until(() => migration!.done, 3000);
    // Waits of 40, 80, 80 and 80 ms (80 * 3 would be 120 without the cap).
    const elapsed = Date.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(270);
    expect(elapsed).toBeLessThan(1500);
    expect(calls.transactions).toBe(5);
  });

  it('calls onFatal when a retry fails for another reason, and retries no more', async () => {
    const bad = new Error('syntax error');
    const { db, calls } = fakeDatabase([down(), bad]);
    const fatal: unknown[] = [];
    const log = captureLogger('debug');
    migration = await migrateAtStart(db, { logger: log.logger, onFatal: (err) => fatal.push(err), migrations: MIGRATIONS, retryMs: 5 });
    await until(() => fatal.length > 0);
    expect(fatal).toEqual([bad]);
    expect(migration.done).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.transactions).toBe(2);
    expect(log.lines.some((l) => JSON.parse(l).level === 'error' && JSON.parse(l).message === 'migration failed')).toBe(true);
  });

  it('stops retrying once stopped (shutdown)', async () => {
    const { db, calls } = fakeDatabase([down(), down(), down()]);
    migration = await migrateAtStart(db, { logger: captureLogger().logger, onFatal: () => undefined, migrations: MIGRATIONS, retryMs: 20 });
    migration.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(calls.transactions).toBe(1);
    expect(migration.done).toBe(false);
  });
});
