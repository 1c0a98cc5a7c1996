// Database over a pg Pool. Every query is bounded twice: by the server (statement_timeout) and by
// the client (query_timeout, for a server that stopped answering at all), and waiting for a
// connection is bounded too, so a request never hangs on PostgreSQL.
import pg from 'pg';
import type { Logger } from '../logger';
import { INT8_OID, parseInt8, type Database, type QueryResult, type Queryable } from './types';
import { measureMs } from '../timeout';

export interface PostgresOptions {
  url: string;
  poolMax: number;
  statementTimeoutMs: number;
  logger: Logger;
}

const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? parseInt8 : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as typeof pg.types.getTypeParser,
};

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const result = await client.query(text, params as unknown[] | undefined);
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await client.query(sql);
    },
  };
}

export function createPostgres({ url, poolMax, statementTimeoutMs, logger }: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolMax,
    connectionTimeoutMillis: Math.max(statementTimeoutMs, 500),
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 200,
    application_name: `rampart-${process.pid}`,
    types,
  });
  // An idle client losing its server emits on the pool; unhandled, that would crash the process.
  pool.on('error', (err) => logger.error('postgres idle client error', { error: err.message }));

  return {
    kind: 'postgres',
    ...wrap(pool),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken: unknown;
      try {
        await client.query('BEGIN');
        const result = await fn(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
          broken = rollbackErr; // the connection is unusable: drop it rather than pool it
        });
        throw err;
      } finally {
        client.release(broken instanceof Error ? broken : undefined);
      }
    },
    ping: () => measureMs(() => pool.query('SELECT 1')),
    async close(): Promise<void> {
      await pool.end();
    },
  };
}
