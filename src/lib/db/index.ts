import type { Config } from '../../config';
import type { Logger } from '../logger';
import { createPglite } from './pglite';
import { createPostgres } from './postgres';
import type { Database } from './types';

export type { Database, Queryable } from './types';

/** PostgreSQL when DATABASE_URL is set, else embedded PGlite (config refuses that in production). */
export async function createDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.databaseUrl) {
    return createPostgres({
      url: config.databaseUrl,
      poolMax: config.dbPoolMax,
      statementTimeoutMs: config.dbStatementTimeoutMs,
      transactionPooling: config.dbTransactionPooling,
      logger,
    });
  }
  return createPglite();
}
