// Embedded PostgreSQL (PGlite, in memory) for development when DATABASE_URL is unset.
// Costs a few seconds and several hundred MB at start: a convenience, never a production store.
import type { PGlite } from '@electric-sql/pglite';
import { INT8_OID, parseInt8, type Database, type QueryResult, type Queryable } from './types';
import { measureMs } from '../timeout';

type PGliteLike = Pick<PGlite, 'query' | 'exec'>;

function wrap(db: PGliteLike): Queryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const result = await db.query<R>(text, params as unknown[] | undefined);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await db.exec(sql);
    },
  };
}

export async function createPglite(): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = new PGlite({ parsers: { [INT8_OID]: parseInt8 } });
  await db.waitReady;
  return {
    kind: 'pglite',
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    ping: () => measureMs(() => db.query('SELECT 1')),
    async close(): Promise<void> {
      await db.close();
    },
  };
}
