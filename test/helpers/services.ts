// Which real services this run has. Outside CI, unset variables mean "use the embedded defaults";
// in CI both must be set, so a misconfigured CI cannot quietly test the stand-ins only.
export const REDIS_URL = process.env.REDIS_URL || undefined;
export const DATABASE_URL = process.env.DATABASE_URL || undefined;
/** DATABASE_URL is a transaction-mode pooler (test/integration/pgbouncer.test.ts runs files so). */
export const DB_TRANSACTION_POOLING = process.env.DB_TRANSACTION_POOLING === 'true';

if (process.env.CI && (!REDIS_URL || !DATABASE_URL)) {
  throw new Error('CI must set REDIS_URL and DATABASE_URL: the tests must exercise the real services');
}

export const NO_REDIS_REASON = 'skipped: REDIS_URL not set (runs against real Redis in CI)';
export const NO_DATABASE_REASON = 'skipped: DATABASE_URL not set (runs against real PostgreSQL in CI)';

/**
 * Whether a tool a test needs is installed. Outside CI a missing tool skips those tests (visibly,
 * with the reason in their names); in CI it is an error right here, since .ci/run installs them.
 */
export function toolAvailable(available: boolean, what: string): boolean {
  if (!available && process.env.CI) throw new Error(`CI must have ${what}: .ci/run installs it`);
  return available;
}

export function uniqueSuffix(): string {
  return `${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
}
