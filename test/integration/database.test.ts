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
import { DATABASE_URL, NO_DATABASE_REASON } from '../helpers/services';

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
  const open = (statementTimeoutMs = 800) => createPostgres({ url: testDb.url, poolMax: 4, statementTimeoutMs, logger });
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
    const pools = Array.from({ length: 4 }, () => createPostgres({ url: fresh.url, poolMax: 2, statementTimeoutMs: 800, logger }));
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

  it('cuts a slow statement off at the statement timeout', async () => {
    const db = open(200);
    const t0 = Date.now();
    await expect(db.query('SELECT pg_sleep(5)')).rejects.toThrow(/statement timeout|timeout/i);
    expect(Date.now() - t0).toBeLessThan(2000);
    // The pool is still usable afterwards.
    expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    await db.close();
  });
});

describe('PostgreSQL failure behaviour', () => {
  it('fails fast when PostgreSQL is down', async () => {
    const port = await freePort();
    const db = createPostgres({ url: `postgres://postgres@127.0.0.1:${port}/none`, poolMax: 2, statementTimeoutMs: 300, logger });
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toThrow();
    await expect(db.ping()).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(2000);
    await db.close();
  });

  it('bounds the wait on a PostgreSQL that accepts connections but never answers', async () => {
    const hole = await blackHole();
    const db = createPostgres({ url: `postgres://postgres@127.0.0.1:${hole.port}/none`, poolMax: 2, statementTimeoutMs: 300, logger });
    const t0 = Date.now();
    await expect(db.query('SELECT 1')).rejects.toThrow(/timeout/i);
    expect(Date.now() - t0).toBeLessThan(2000);
    await db.close();
    await hole.close();
  });
});
