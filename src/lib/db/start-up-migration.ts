// Migrating at start-up without making the database a start-up requirement. When the database
// cannot be reached, the process starts anyway (live, not ready), keeps trying in the background,
// and until the migrations are applied the app's database refuses at once with 503: a query
// against a schema that is not there yet would fail as a bug (500), and a wait would hold the
// request. A migration that fails for any other reason (a changed file, bad SQL) is fatal.
import type { Logger } from '../logger';
import { serviceUnavailable } from '../errors';
import { migrate, type Migration } from './migrate';
import type { Database, QueryResult } from './types';
import { isServiceUnavailable } from './unavailable';

export interface StartUpMigration {
  /** The database the app should use: it refuses (503; ping throws) until the migrations are applied. */
  readonly db: Database;
  /** Whether the migrations have been applied. */
  readonly done: boolean;
  /** Stops retrying (shutdown). */
  stop(): void;
}

export interface StartUpMigrationOptions {
  logger: Logger;
  /** A migration failed for a reason other than an unreachable database, after start-up. */
  onFatal: (err: unknown) => void;
  /** Wait before the nth retry: retryMs * n, at most maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  /** The migrations to apply (tests); those of migrations/ by default. */
  migrations?: Migration[];
}

const PENDING = 'database migrations pending';

/**
 * Applies pending migrations now if the database answers; otherwise returns at once and applies
 * them when it does. Throws when a migration fails for another reason, so that start-up fails.
 */
export async function migrateAtStart(db: Database, options: StartUpMigrationOptions): Promise<StartUpMigration> {
  const { logger, onFatal, retryMs = 250, maxRetryMs = 2000, migrations } = options;
  let done = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  /** true when applied, false when the database is unreachable; throws for anything else. */
  const attempt = async (): Promise<boolean> => {
    try {
      const applied = await migrate(db, migrations);
      if (applied.length > 0) logger.info('migrations applied', { migrations: applied });
      done = true;
      return true;
    } catch (err) {
      if (isServiceUnavailable(err)) return false;
      throw err;
    }
  };

  const retry = (n: number) => {
    timer = setTimeout(
      () => {
        attempt().then(
          (ok) => {
            if (ok) logger.info('database reachable; migrations done, database routes serving');
            else if (!stopped) retry(n + 1);
          },
          (err: unknown) => {
            if (stopped) return;
            logger.error('migration failed', { error: err });
            onFatal(err);
          },
        );
      },
      Math.min(retryMs * n, maxRetryMs),
    );
    timer.unref();
  };

  if (!(await attempt())) {
    logger.warn('database unreachable at start-up: serving without it (503 on database routes) and migrating once it answers');
    retry(1);
  }

  const refuse = () => Promise.reject(serviceUnavailable(new Error(PENDING)));
  const gated: Database = {
    kind: db.kind,
    query: <R>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>> => (done ? db.query<R>(text, params) : refuse()),
    exec: (sql) => (done ? db.exec(sql) : refuse()),
    transaction: (fn) => (done ? db.transaction(fn) : refuse()),
    ping: () => (done ? db.ping() : Promise.reject(new Error(PENDING))),
    close: () => db.close(),
  };
  return {
    // Migrated at once: the database itself, with nothing in front of it.
    db: done ? db : gated,
    get done() {
      return done;
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
