// The Database contract on embedded PGlite and real PostgreSQL, migrations (idempotent, safe in
// parallel), and bounded failure when PostgreSQL is slow or down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, readMigrations } from '../../src/lib/db/migrate';
import { createPglite } from '../../src/lib/db/pglite';
import { createPostgres } from '../../src/lib/db/postgres';
import type { Database } from '../../src/lib/db/types';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { captureLogger } from '../helpers/log-capture';
import { blackHole, freePort } from '../helpers/redis-server';
import { DATABASE_URL, DB_TRANSACTION_POOLING, NO_DATABASE_REASON } from '../helpers/services';

const { logger } = captureLogger();

function databaseContract(name: string, make: () => Promise<{ db: Database; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let db: Database;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ db, cleanup } = await make());
    });
    afterAll(async () => cleanup?.());

    it('applies the migrations once, then finds nothing to do', async () => {
      const all = await readMigrations();
      expect(all.length).toBeGreaterThan(0);
      expect(await migrate(db)).toEqual(all.map((m) => m.id));
      expect(await migrate(db)).toEqual([]);
    });

    it('refuses a migration that changed after it was applied', async () => {
      const [first] = await readMigrations();
      await expect(migrate(db, [{ ...first!, checksum: 'edited' }])).rejects.toThrow(/changed after it was applied/);
    });

    it('runs parameterised queries and returns int8 as a number', async () => {
      const { rows } = await db.query<{ n: number; s: string }>('SELECT count(*) AS n, $1::text AS s FROM users', ['hi']);
      expect(rows).toEqual([{ n: 0, s: 'hi' }]);
    });

    it('reports rowCount for writes', async () => {
      const id = crypto.randomUUID();
      const insert = await db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [id, `${id}@example.com`, 'h']);
      expect(insert.rowCount).toBe(1);
      const del = await db.query('DELETE FROM users WHERE id = $1', [id]);
      expect(del.rowCount).toBe(1);
    });

    it('enforces case-insensitive email uniqueness in the schema', async () => {
      await db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [crypto.randomUUID(), 'same@example.com', 'h']);
      await expect(
        db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [crypto.randomUUID(), 'same@example.com', 'h']),
      ).rejects.toThrow(/unique|duplicate/i);
      await expect(
        db.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [crypto.randomUUID(), 'Upper@Example.com', 'h']),
      ).rejects.toThrow(/check/i);
    });

    it('commits a transaction, and rolls one back when it throws', async () => {
      const a = crypto.randomUUID();
      await db.transaction((tx) => tx.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [a, `${a}@example.com`, 'h']));
      const b = crypto.randomUUID();
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)', [b, `${b}@example.com`, 'h']);
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      const { rows } = await db.query<{ id: string }>('SELECT id FROM users WHERE id = ANY($1::uuid[])', [[a, b]]);
      expect(rows.map((r) => r.id)).toEqual([a]);
    });

    it('answers ping', async () => {
      expect(await db.ping()).toBeGreaterThanOrEqual(0);
    });
  });
}

databaseContract('PGlite (embedded default)', async () => {
  const db = await createPglite();
  return { db, cleanup: () => db.close() };
});

describe.skipIf(!DATABASE_URL)(`PostgreSQL on DATABASE_URL${DATABASE_URL ? '' : ` [${NO_DATABASE_REASON}]`}`, () => {
  let testDb: TestDatabase;
  const open = (statementTimeoutMs = 800) =>
    createPostgres({ url: testDb.url, poolMax: 4, statementTimeoutMs, transactionPooling: DB_TRANSACTION_POOLING, logger });
  beforeAll(async () => {
    testDb = await createTestDatabase();
  });
  afterAll(async () => testDb?.drop());

  databaseContract('contract', async () => {
    const db = open();
    return { db, cleanup: () => db.close() };
  });

  it('applies migrations exactly once when several processes start at once', async () => {
    const fresh = await createTestDatabase();
    const pools = Array.from({ length: 4 }, () =>
      createPostgres({ url: fresh.url, poolMax: 2, statementTimeoutMs: 800, transactionPooling: DB_TRANSACTION_POOLING, logger }),
    );
    try {
      const results = await Promise.all(pools.map((db) => migrate(db)));
      const all = (await readMigrations()).map((m) => m.id);
      expect(results.flat().sort()).toEqual(all.sort()); // each migration applied by exactly one
      const { rows } = await pools[0]!.query<{ n: number }>('SELECT count(*) AS n FROM schema_migrations');
      expect(rows[0]!.n).toBe(all.length);
    } finally {
      await Promise.all(pools.map((db) => db.close()));
      await fresh.drop();
    }
  });

  it('cuts a slow statement off at the statement timeout, as unavailability (503)', async () => {
    const db = open(200);
    const t0 = Date.now();
    const err = await db.query('SELECT pg_sleep(5)').catch((e: unknown) => e);
    // The server's cancellation (57014), not the client's later bound; behind a pooler the
    // server's timeout is the role's (longer here), so the client's bound comes first.
    expect(err).toMatchObject({ code: 'service_unavailable', cause: DB_TRANSACTION_POOLING ? { message: 'Query read timeout' } : { code: '57014' } });
    expect(Date.now() - t0).toBeLessThan(2000);
    // The pool is still usable afterwards.
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    await db.close();
  });

  it('keeps SQL errors of the code as they are: they are bugs (500), not unavailability', async () => {
    const db = open();
    await expect(db.query('SELEC 1')).rejects.toMatchObject({ code: '42601' });
    await expect(db.transaction((tx) => tx.query('SELECT * FROM no_such_table'))).rejects.toMatchObject({ code: '42P01' });
    await db.close();
  });

  it('answers 503 within the pool wait when every connection is taken (pool of 1)', async () => {
    const db = createPostgres({ url: testDb.url, poolMax: 1, statementTimeoutMs: 800, transactionPooling: DB_TRANSACTION_POOLING, logger });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const holder = db.transaction(async (tx) => {
      await tx.query('SELECT pg_sleep(0.3)');
      await held; // a slow transaction keeps its connection
    });
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toMatchObject({
      code: 'service_unavailable',
      headers: { 'Retry-After': '5' },
      cause: { message: 'timeout exceeded when trying to connect' },
    });
    // The wait is DB_STATEMENT_TIMEOUT_MS (800 ms); generous bound for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(1500);
    release();
    await holder;
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    await db.close();
  });

  // Through PgBouncer the direct pool is refused: test/integration/pgbouncer.test.ts shows that.
  it.skipIf(DB_TRANSACTION_POOLING)(
    `sets the statement timeout at connection when direct, and nothing behind a transaction pooler${DB_TRANSACTION_POOLING ? ' [skipped: DATABASE_URL is a pooler]' : ''}`,
    async () => {
      const direct = open(700);
      const pooled = createPostgres({ url: testDb.url, poolMax: 1, statementTimeoutMs: 700, transactionPooling: true, logger });
      try {
        expect((await direct.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('700ms');
        // The role's default (none on the test server's role), not the app's.
        expect((await pooled.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('0');
        // The client-side bound holds all the same: a statement the server lets run is cut off at 900 ms.
        const t0 = Date.now();
        await expect(pooled.query('SELECT pg_sleep(3)')).rejects.toMatchObject({ code: 'service_unavailable', cause: { message: 'Query read timeout' } });
        expect(Date.now() - t0).toBeLessThan(2000);
      } finally {
        await Promise.all([direct.close(), pooled.close()]);
      }
    },
  );
});

describe('PostgreSQL failure behaviour', () => {
  it('fails fast when PostgreSQL is down, as unavailability (503)', async () => {
    const port = await freePort();
    const db = createPostgres({ url: `postgres://postgres@127.0.0.1:${port}/none`, poolMax: 2, statementTimeoutMs: 300, logger });
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'service_unavailable', headers: { 'Retry-After': '5' } });
    await expect(db.transaction((tx) => tx.query('SELECT 1'))).rejects.toMatchObject({ code: 'service_unavailable' });
    await expect(db.ping()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(2000);
    await db.close();
  });

  it('bounds the wait on a PostgreSQL that accepts connections but never answers', async () => {
    const hole = await blackHole();
    const db = createPostgres({ url: `postgres://postgres@127.0.0.1:${hole.port}/none`, poolMax: 2, statementTimeoutMs: 300, logger });
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toMatchObject({ code: 'service_unavailable', cause: { message: expect.stringMatching(/timeout/i) } });
    expect(Date.now() - t0).toBeLessThan(2000);
    await db.close();
    await hole.close();
  });
});
