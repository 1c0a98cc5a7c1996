// SQL migrations from the repository's migrations/ folder, applied in name order. Safe when several
// workers start at once: everything runs in one transaction that first takes an advisory lock, so
// the others wait, then find nothing left to do. Idempotent; a changed applied file is an error.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Database } from './types';

/** migrations/ at the package root; the same relative path from src/lib/db and dist/lib/db. */
const MIGRATIONS_DIR = path.resolve(__dirname, '../../../migrations');

// Arbitrary but fixed: identifies "rampart migrations" among advisory locks.
const MIGRATION_LOCK_KEY = 0x72616d70; // "ramp"

export interface Migration {
  id: string;
  sql: string;
  checksum: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- the migrations directory: a constant, or a test's fixture directory
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      // eslint-disable-next-line security/detect-non-literal-fs-filename -- a file name listed from that directory
      const sql = await readFile(path.join(dir, file), 'utf8');
      return { id: file.replace(/\.sql$/, ''), sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/** Applies pending migrations; returns the ids applied by this call. */
export async function migrate(db: Database, migrations?: Migration[]): Promise<string[]> {
  const all = migrations ?? (await readMigrations());
  return db.transaction(async (tx) => {
    // Migrations may legitimately take longer than the request-path statement timeout.
    await tx.exec(`SET LOCAL statement_timeout = '5min'`);
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      id text PRIMARY KEY,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await tx.query<{ id: string; checksum: string }>('SELECT id, checksum FROM schema_migrations');
    const applied = new Map(rows.map((r) => [r.id, r.checksum]));
    const done: string[] = [];
    for (const m of all) {
      const previous = applied.get(m.id);
      if (previous !== undefined) {
        if (previous !== m.checksum) {
          throw new Error(`migration ${m.id} was changed after it was applied; add a new migration instead`);
        }
        continue;
      }
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (id, checksum) VALUES ($1, $2)', [m.id, m.checksum]);
      done.push(m.id);
    }
    return done;
  });
}
