// `npm run migrate`: applies pending migrations to DATABASE_URL (or reports the embedded default).
import { loadConfig, ConfigError } from '../config';
import { createDatabase } from '../lib/db';
import { migrate } from '../lib/db/migrate';
import { createLogger } from '../lib/logger';

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const logger = createLogger({ level: config.logLevel, json: config.isProduction });
  if (!config.databaseUrl) logger.warn('DATABASE_URL not set: migrating a throw-away embedded database (a dry run)');
  const db = await createDatabase(config, logger);
  try {
    const applied = await migrate(db);
    logger.info(applied.length > 0 ? 'migrations applied' : 'database already up to date', { migrations: applied });
    return 0;
  } catch (err) {
    logger.error('migration failed', { error: err });
    return 1;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`migration failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
