// Database over a pg Pool. Every query is bounded twice: by the server (statement_timeout) and by
// the client (query_timeout, for a server that stopped answering at all), and waiting for a
// connection is bounded too, so a request never hangs on PostgreSQL. Failures that mean the
// database is down or saturated leave as 503 service_unavailable (see ./unavailable).
//
// Nothing is set per session on the request path: behind a pooler in transaction mode (PgBouncer)
// the next transaction may run on another server connection, and PgBouncer refuses session
// start-up parameters such as statement_timeout. There the server-side timeout is the database
// role's (ALTER ROLE ... SET statement_timeout); connecting directly, it is sent at start-up,
// which costs no round trip.
import pg from 'pg';
import type { Logger } from '../logger';
import { INT8_OID, parseInt8, type Database, type QueryResult, type Queryable } from './types';
import { measureMs } from '../timeout';
import { classifyDatabaseError, isServiceUnavailable } from './unavailable';

export interface PostgresOptions {
  url: string;
  poolMax: number;
  statementTimeoutMs: number;
  /** DATABASE_URL is a transaction-mode pooler: send no start-up parameter beyond application_name. */
  transactionPooling?: boolean;
  logger: Logger;
}

const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? parseInt8 : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as typeof pg.types.getTypeParser,
};

/** Runs a pg call, turning an outage or saturation into 503 service_unavailable. */
async function classified<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw classifyDatabaseError(err);
  }
}

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      const result = await classified(() => client.query(text, params as unknown[] | undefined));
      return { rows: result.rows as R[], rowCount: result.rowCount ?? result.rows.length };
    },
    async exec(sql: string): Promise<void> {
      await classified(() => client.query(sql));
    },
  };
}

/** How long the client waits for the server beyond the server's own statement timeout. */
const CLIENT_TIMEOUT_MARGIN_MS = 200;

export function createPostgres({ url, poolMax, statementTimeoutMs, transactionPooling = false, logger }: PostgresOptions): Database {
  const pool = new pg.Pool({
    connectionString: url,
    max: poolMax,
    // Also the wait for a free pool connection: a saturated pool answers 503 this fast.
    connectionTimeoutMillis: Math.max(statementTimeoutMs, 500),
    idleTimeoutMillis: 30_000,
    ...(transactionPooling ? {} : { statement_timeout: statementTimeoutMs }),
    query_timeout: statementTimeoutMs + CLIENT_TIMEOUT_MARGIN_MS,
    application_name: `rampart-${process.pid}`,
    types,
  });
  // An idle client losing its server emits on the pool; unhandled, that would crash the process.
  // An outage, not a bug: a warning per pooled connection at most.
  pool.on('error', (err) => logger.warn('postgres idle client error', { error: err.message }));

  return {
    kind: 'postgres',
    ...wrap(pool),
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const client = await classified(() => pool.connect());
      let broken: unknown;
      try {
        const tx = wrap(client);
        await tx.exec('BEGIN');
        const result = await fn(tx);
        await tx.exec('COMMIT');
        return result;
      } catch (err) {
        if (isServiceUnavailable(err)) {
          // The connection may still be busy or gone: a ROLLBACK would wait behind it. Dropping
          // the connection ends the transaction on the server.
          broken = err;
        } else {
          await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
            broken = rollbackErr; // the connection is unusable: drop it rather than pool it
          });
        }
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
