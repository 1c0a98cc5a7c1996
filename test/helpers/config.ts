// Configurations the config tests start from, and the problems loadConfig reports for one.
import { ConfigError, loadConfig, type Env } from '../../src/config';

export const SECRET_A = 'a'.repeat(40);
export const SECRET_B = 'b'.repeat(40);

/** The smallest environment production accepts. */
export const PRODUCTION_OK: Env = {
  NODE_ENV: 'production',
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
  JWT_ACCESS_SECRET: SECRET_A,
  JWT_REFRESH_SECRET: SECRET_B,
  CORS_ORIGINS: 'https://app.example.com',
  TRUST_PROXY: '1',
};

/** Every problem loadConfig reports for this environment; none when it loads. */
export function problemsOf(env: Env): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return [...err.problems];
  }
}
