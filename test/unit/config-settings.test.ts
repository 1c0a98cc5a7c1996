// Every setting at the edges of what it accepts, and the defaults and production rules that keep a
// deployment closed. The config module is loaded inside each test (test/helpers/fresh.ts): its
// schema, defaults and patterns are top-level declarations.
import { describe, expect, it } from 'vitest';
import { describeRoutes } from '../../src/cli/openapi';
import { CONFIG_VARIABLES, type Config, type Env } from '../../src/config';
import { PRODUCTION_OK, SECRET_A, SECRET_B } from '../helpers/config';
import { fresh } from '../helpers/fresh';

/** The configuration for `env`, or every problem reported for it. */
async function configure(env: Env): Promise<{ config: Config | undefined; problems: string[] }> {
  const { loadConfig, ConfigError } = await fresh(() => import('../../src/config/index.js'));
  try {
    return { config: loadConfig(env), problems: [] };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { config: undefined, problems: [...err.problems] };
  }
}

async function load(env: Env): Promise<Config> {
  const { config, problems } = await configure(env);
  expect(problems).toEqual([]);
  return config!;
}

const problemsOf = async (env: Env): Promise<string[]> => (await configure(env)).problems;

interface IntegerSetting {
  name: string;
  min: number;
  max: number;
  read: (c: Config) => number;
  /** Settings it must agree with, at values that let it take its whole range. */
  others?: Env;
}

const RATE_LIMIT = /^RATE_LIMIT_([A-Z_]+)_(MAX|WINDOW_MS)$/;
const INTEGER_SETTINGS: IntegerSetting[] = [
  { name: 'PORT', min: 0, max: 65_535, read: (c) => c.port },
  { name: 'SHUTDOWN_TIMEOUT_MS', min: 0, max: 600_000, read: (c) => c.shutdownTimeoutMs },
  { name: 'SHUTDOWN_DRAIN_MS', min: 0, max: 60_000, read: (c) => c.shutdownDrainMs },
  { name: 'KEEP_ALIVE_TIMEOUT_MS', min: 1000, max: 600_000, read: (c) => c.keepAliveTimeoutMs },
  { name: 'HEADERS_TIMEOUT_MS', min: 1000, max: 600_000, read: (c) => c.headersTimeoutMs, others: { REQUEST_TIMEOUT_MS: '600000' } },
  { name: 'REQUEST_TIMEOUT_MS', min: 1000, max: 600_000, read: (c) => c.requestTimeoutMs, others: { HEADERS_TIMEOUT_MS: '1000' } },
  { name: 'MAX_CONNECTIONS', min: 1, max: 1_000_000, read: (c) => c.maxConnections },
  { name: 'SHED_EVENT_LOOP_DELAY_MS', min: 0, max: 60_000, read: (c) => c.shed.maxEventLoopDelayMs },
  { name: 'SHED_MAX_IN_FLIGHT', min: 0, max: 1_000_000, read: (c) => c.shed.maxInFlight },
  { name: 'SHED_HEAP_USED_PERCENT', min: 0, max: 100, read: (c) => c.shed.maxHeapUsedPercent },
  { name: 'REDIS_COMMAND_TIMEOUT_MS', min: 10, max: 5000, read: (c) => c.redisCommandTimeoutMs },
  { name: 'REDIS_REPLICA_WAIT_MS', min: 0, max: 5000, read: (c) => c.redisReplicaWaitMs },
  { name: 'DB_STATEMENT_TIMEOUT_MS', min: 10, max: 60_000, read: (c) => c.dbStatementTimeoutMs },
  { name: 'DB_POOL_MAX', min: 1, max: 200, read: (c) => c.dbPoolMax },
  // Every rate-limit scope the schema reads: a count of requests, and a window from 1 s to 7 days.
  ...CONFIG_VARIABLES.flatMap((name): IntegerSetting[] => {
    const match = RATE_LIMIT.exec(name);
    if (!match) return [];
    const scope = match[1] as keyof Config['rateLimits'];
    return match[2] === 'MAX'
      ? [{ name, min: 1, max: 1_000_000_000, read: (c) => c.rateLimits[scope].max }]
      : [{ name, min: 1000, max: 7 * 86_400_000, read: (c) => c.rateLimits[scope].windowMs }];
  }),
];

describe('integer settings', () => {
  it('covers every rate-limit scope', () => {
    expect(INTEGER_SETTINGS.filter((s) => RATE_LIMIT.test(s.name)).length).toBeGreaterThanOrEqual(8);
  });

  it.each(INTEGER_SETTINGS)('$name takes $min and $max, and refuses one beyond either end', async ({ name, min, max, read, others }) => {
    expect(read(await load({ ...others, [name]: String(min) }))).toBe(min);
    expect(read(await load({ ...others, [name]: String(max) }))).toBe(max);
    const range = `${name}: must be an integer from ${min} to ${max}`;
    expect(await problemsOf({ ...others, [name]: String(max + 1) })).toEqual([range]);
    expect(await problemsOf({ ...others, [name]: String(min - 1) })).toEqual([range]);
  });

  it.each(INTEGER_SETTINGS)('$name is written in plain digits: no exponent, fraction, sign, separator or hex', async ({ name, min, max, others }) => {
    const range = `${name}: must be an integer from ${min} to ${max}`;
    const value = max; // in range however it is spelt
    for (const spelling of [`${value}.0`, `+${value}`, `${value}e0`, `0x${value.toString(16)}`, `${value},0`, `${value} 0`, `${value}abc`, 'ten']) {
      expect(await problemsOf({ ...others, [name]: spelling }), spelling).toEqual([range]);
    }
    // 1e3 is 1000 to Number(), inside most of these ranges: still refused.
    expect(await problemsOf({ ...others, [name]: '1e3' })).toEqual([range]);
  });

  it('ignores surrounding whitespace, and takes an empty value as unset', async () => {
    expect((await load({ PORT: '  8080 ' })).port).toBe(8080);
    expect((await load({ DB_POOL_MAX: '\t7\n' })).dbPoolMax).toBe(7);
    expect((await load({ PORT: '', DB_POOL_MAX: '   ' })).port).toBe(3000);
  });

  it('defaults to the documented values', async () => {
    const config = await load({});
    expect([config.port, config.shutdownTimeoutMs, config.shutdownDrainMs, config.keepAliveTimeoutMs]).toEqual([3000, 10_000, 1500, 65_000]);
    expect([config.redisCommandTimeoutMs, config.dbStatementTimeoutMs, config.dbPoolMax]).toEqual([250, 800, 10]);
    expect([config.headersTimeoutMs, config.requestTimeoutMs, config.maxConnections]).toEqual([10_000, 30_000, 1024]);
    expect(config.shed).toEqual({ maxEventLoopDelayMs: 250, maxInFlight: 512, maxHeapUsedPercent: 90 });
    // The headers timeout no longer follows the keep-alive timeout (Node 18 and later time the
    // headers from the request's first byte, not from the end of the previous response).
    expect((await load({ KEEP_ALIVE_TIMEOUT_MS: '1000' })).headersTimeoutMs).toBe(10_000);
  });
});

describe('slow-client timeouts', () => {
  const relation = 'HEADERS_TIMEOUT_MS: must not be longer than REQUEST_TIMEOUT_MS (the headers are part of the request)';

  it('takes a headers timeout up to the request timeout, equal included', async () => {
    const equal = await load({ HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '20000' });
    expect([equal.headersTimeoutMs, equal.requestTimeoutMs]).toEqual([20_000, 20_000]);
    expect((await load({ HEADERS_TIMEOUT_MS: '30000' })).headersTimeoutMs).toBe(30_000); // the default request timeout
    expect((await load({ REQUEST_TIMEOUT_MS: '10000' })).requestTimeoutMs).toBe(10_000); // the default headers timeout
  });

  it('refuses a headers timeout longer than the request timeout, against either default, one millisecond over', async () => {
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: '20001', REQUEST_TIMEOUT_MS: '20000' })).toEqual([relation]);
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: '30001' })).toEqual([relation]);
    expect(await problemsOf({ REQUEST_TIMEOUT_MS: '9999' })).toEqual([relation]);
  });

  it('lists the relation with every other problem, and only once each value is valid', async () => {
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '5000', PORT: 'x', JWT_ACCESS_SECRET: 'short' })).toEqual([
      'PORT: must be an integer from 0 to 65535',
      'JWT_ACCESS_SECRET: must be at least 32 bytes (got 5)',
      relation,
    ]);
    // An invalid value is reported as such, not compared.
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: '60000', REQUEST_TIMEOUT_MS: '500' })).toEqual([
      'REQUEST_TIMEOUT_MS: must be an integer from 1000 to 600000',
    ]);
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: 'soon', REQUEST_TIMEOUT_MS: '5000' })).toEqual([
      'HEADERS_TIMEOUT_MS: must be an integer from 1000 to 600000',
    ]);
    // Empty means unset: the default takes part in the comparison.
    expect(await problemsOf({ HEADERS_TIMEOUT_MS: '', REQUEST_TIMEOUT_MS: '5000' })).toEqual([relation]);
    expect(await problemsOf({ ...PRODUCTION_OK, HEADERS_TIMEOUT_MS: '40000' })).toEqual([relation]);
  });
});

describe('defaults that keep a deployment closed', () => {
  const diagnostic = (config: Config) => describeRoutes(config).filter((m) => m.path.startsWith('/api/v1/_diag'));

  it('leaves the diagnostic routes off unless ENABLE_DIAGNOSTIC_ROUTES says true', async () => {
    for (const env of [{}, { NODE_ENV: 'test' }, PRODUCTION_OK, { ENABLE_DIAGNOSTIC_ROUTES: '' }]) {
      const config = await load(env);
      expect(config.enableDiagnosticRoutes).toBe(false);
      expect(diagnostic(config)).toEqual([]);
    }
    expect(diagnostic(await load({ ENABLE_DIAGNOSTIC_ROUTES: 'true' })).length).toBeGreaterThan(0);
  });

  it('refuses them in production, and reports a value that is not a boolean once', async () => {
    expect(await problemsOf({ ...PRODUCTION_OK, ENABLE_DIAGNOSTIC_ROUTES: 'on' })).toEqual([
      'ENABLE_DIAGNOSTIC_ROUTES: refused in production (it exposes /api/v1/_diag/*)',
    ]);
    expect(await problemsOf({ ...PRODUCTION_OK, ENABLE_DIAGNOSTIC_ROUTES: 'false' })).toEqual([]);
    expect(await problemsOf({ ...PRODUCTION_OK, ENABLE_DIAGNOSTIC_ROUTES: 'maybe' })).toEqual(['ENABLE_DIAGNOSTIC_ROUTES: must be true or false']);
  });

  it('trusts only loopback proxies and allows no browser origin by default', async () => {
    const config = await load({});
    expect(config.trustProxy).toEqual(['loopback']);
    expect(config.opsAllowedAddresses).toEqual(['loopback']);
    expect(config.corsOrigins).toEqual([]);
    expect(config.opsToken).toBeUndefined();
  });
});

describe('OPS_TOKEN in production', () => {
  const bytes = (n: number) => 'o'.repeat(n);

  it('is refused under 32 bytes and accepted from 32', async () => {
    expect(await problemsOf({ ...PRODUCTION_OK, OPS_TOKEN: bytes(31) })).toEqual(['OPS_TOKEN: must be at least 32 bytes']);
    expect((await load({ ...PRODUCTION_OK, OPS_TOKEN: bytes(32) })).opsToken).toBe(bytes(32));
  });

  it('counts bytes, not characters', async () => {
    // 16 characters of two bytes each are 32 bytes; 15 of them and one more byte are 31.
    expect(await problemsOf({ ...PRODUCTION_OK, OPS_TOKEN: 'é'.repeat(16) })).toEqual([]);
    expect(await problemsOf({ ...PRODUCTION_OK, OPS_TOKEN: `${'é'.repeat(15)}x` })).toEqual(['OPS_TOKEN: must be at least 32 bytes']);
  });

  it('may be left unset (blank counts as unset): then only the allowed addresses open the ops endpoints', async () => {
    expect((await load({ ...PRODUCTION_OK, OPS_TOKEN: '   ' })).opsToken).toBeUndefined();
  });
});

describe('secrets', () => {
  it('are at least 32 bytes, counted exactly', async () => {
    expect(await problemsOf({ JWT_ACCESS_SECRET: 'a'.repeat(31), JWT_REFRESH_SECRET: SECRET_B })).toEqual([
      'JWT_ACCESS_SECRET: must be at least 32 bytes (got 31)',
    ]);
    expect(await problemsOf({ JWT_ACCESS_SECRET: SECRET_A, JWT_REFRESH_SECRET: 'é'.repeat(15) })).toEqual([
      'JWT_REFRESH_SECRET: must be at least 32 bytes (got 30)',
    ]);
    const config = await load({ JWT_ACCESS_SECRET: 'a'.repeat(32), JWT_REFRESH_SECRET: 'b'.repeat(32) });
    expect([config.jwt.accessSecret, config.jwt.refreshSecret, config.jwt.generatedSecrets]).toEqual(['a'.repeat(32), 'b'.repeat(32), false]);
  });

  it('lists previous access secrets trimmed, and refuses a short one by its position', async () => {
    const config = await load({ JWT_ACCESS_PREVIOUS_SECRETS: ` ${SECRET_A} ,, ${SECRET_B} ,` });
    expect(config.jwt.previousAccessSecrets).toEqual([SECRET_A, SECRET_B]);
    expect((await load({})).jwt.previousAccessSecrets).toEqual([]);
    expect(await problemsOf({ JWT_ACCESS_PREVIOUS_SECRETS: `${SECRET_A},${'p'.repeat(31)}` })).toEqual([
      'JWT_ACCESS_PREVIOUS_SECRETS: entry 2 must be at least 32 bytes',
    ]);
    expect(await problemsOf({ JWT_ACCESS_PREVIOUS_SECRETS: 'p'.repeat(32) })).toEqual([]);
  });

  it('generates the missing one for the process, keeping one that is given, with a warning', async () => {
    const config = await load({ JWT_ACCESS_SECRET: SECRET_A });
    expect(config.jwt.accessSecret).toBe(SECRET_A);
    expect(config.jwt.refreshSecret).toMatch(/^[A-Za-z0-9_-]{64}$/); // 48 random bytes, base64url
    expect(config.jwt.generatedSecrets).toBe(true);
    const both = await load({});
    expect(both.jwt.accessSecret).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(both.jwt.refreshSecret).toMatch(/^[A-Za-z0-9_-]{64}$/);
    expect(config.warnings).toContain(
      'JWT secrets not configured: generated random ones for this process; tokens will not survive a restart or work across workers',
    );
  });
});

describe('production', () => {
  it('names every missing requirement and why', async () => {
    expect(await problemsOf({ NODE_ENV: 'production' })).toEqual(
      expect.arrayContaining([
        'REDIS_URL: required in production (in-process stores break rate limits and revocation across workers)',
        'DATABASE_URL: required in production (the embedded database is for development only)',
        'JWT_ACCESS_SECRET: required in production (at least 32 bytes)',
        'JWT_REFRESH_SECRET: required in production (at least 32 bytes)',
        'CORS_ORIGINS: must be set explicitly in production (an empty value allows no browser origin)',
        'TRUST_PROXY: required in production (the number of proxy hops or their addresses, e.g. 1 behind one nginx)',
      ]),
    );
  });

  it('takes a blank requirement as missing, except CORS_ORIGINS, where empty means no origin', async () => {
    expect(await problemsOf({ ...PRODUCTION_OK, REDIS_URL: ' ', TRUST_PROXY: '' })).toEqual([
      'REDIS_URL: required in production (in-process stores break rate limits and revocation across workers)',
      'TRUST_PROXY: required in production (the number of proxy hops or their addresses, e.g. 1 behind one nginx)',
    ]);
    expect((await load({ ...PRODUCTION_OK, CORS_ORIGINS: '' })).corsOrigins).toEqual([]);
  });

  it('warns about nothing once everything is configured', async () => {
    expect((await load(PRODUCTION_OK)).warnings).toEqual([]);
  });
});

describe('stores', () => {
  it('say when they are embedded', async () => {
    const { warnings } = await load({});
    expect(warnings).toContain('REDIS_URL not set: using an in-process store (single process only; rate limits and revocation are not shared)');
    expect(warnings).toContain('DATABASE_URL not set: using embedded PGlite in memory (development only; data is lost on exit)');
    const redisOnly = await load({ REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(redisOnly.warnings.some((w) => w.startsWith('REDIS_URL'))).toBe(false);
    expect(redisOnly.warnings.some((w) => w.startsWith('DATABASE_URL'))).toBe(true);
  });

  it('take redis and rediss URLs, the cache falling back to the main Redis', async () => {
    const config = await load({ REDIS_URL: 'rediss://redis.internal:6380/1', DATABASE_URL: 'postgresql://db.internal/app' });
    expect([config.redisUrl, config.cacheRedisUrl, config.databaseUrl]).toEqual([
      'rediss://redis.internal:6380/1',
      'rediss://redis.internal:6380/1',
      'postgresql://db.internal/app',
    ]);
    expect((await load({ REDIS_URL: 'redis://a:6379', CACHE_REDIS_URL: 'redis://b:6379' })).cacheRedisUrl).toBe('redis://b:6379');
    for (const [name, bad] of [
      ['REDIS_URL', 'http://redis:6379'],
      ['REDIS_URL', 'xredis://redis:6379'],
      ['REDIS_URL', 'redisx://redis:6379'],
      ['CACHE_REDIS_URL', 'memcached://cache:11211'],
      ['CACHE_REDIS_URL', 'redis-cache://cache:6379'],
      ['DATABASE_URL', 'mysql://db/app'],
      ['DATABASE_URL', 'postgresqlx://db/app'],
      ['DATABASE_URL', 'xpostgres://db/app'],
    ] as const) {
      const problems = await problemsOf({ [name]: bad });
      expect(problems, bad).toHaveLength(1);
      expect(problems[0], bad).toMatch(new RegExp(`^${name}: `));
    }
  });

  it('prefix Redis keys with 1 to 64 of A-Z a-z 0-9 _ : . -', async () => {
    expect((await load({})).redisKeyPrefix).toBe('rampart:');
    expect((await load({ REDIS_KEY_PREFIX: 'shop-1.prod:v2_' })).redisKeyPrefix).toBe('shop-1.prod:v2_');
    expect((await load({ REDIS_KEY_PREFIX: 'k'.repeat(64) })).redisKeyPrefix).toBe('k'.repeat(64));
    for (const bad of ['k'.repeat(65), 'has space', 'star*', 'x{1}', '$', 'é']) {
      expect(await problemsOf({ REDIS_KEY_PREFIX: bad }), bad).toEqual(['REDIS_KEY_PREFIX: must be 1 to 64 of A-Z a-z 0-9 _ : . -']);
    }
  });
});

describe('problems', () => {
  it('are listed one a line under one heading, in an error named ConfigError', async () => {
    const { loadConfig, ConfigError } = await fresh(() => import('../../src/config/index.js'));
    let caught: unknown;
    try {
      loadConfig({ PORT: 'x', LOG_LEVEL: 'loud', NODE_ENV: 'development' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as InstanceType<typeof ConfigError>;
    expect(error.name).toBe('ConfigError');
    expect(error.problems).toHaveLength(2);
    expect(error.message).toBe(`Invalid configuration:\n  - ${error.problems[0]}\n  - ${error.problems[1]}`);
  });

  it('name the environment as written, the development one included', async () => {
    expect((await load({ NODE_ENV: 'development' })).env).toBe('development');
    expect((await load({ NODE_ENV: 'production', ...PRODUCTION_OK })).env).toBe('production');
    for (const bad of ['xredis://cache:6379', 'rediss2://cache:6379']) expect(await problemsOf({ CACHE_REDIS_URL: bad }), bad).toHaveLength(1);
  });
});

describe('other settings', () => {
  it('reads durations, sizes and names', async () => {
    const config = await load({
      JWT_ACCESS_TTL: '90s',
      JWT_REFRESH_TTL: '2d',
      JWT_SESSION_MAX_AGE: '30d',
      BODY_LIMIT: '2kb',
      JWT_ISSUER: 'me',
      JWT_AUDIENCE: 'you',
    });
    expect(config.jwt).toMatchObject({ accessTtlMs: 90_000, refreshTtlMs: 2 * 86_400_000, sessionMaxAgeMs: 30 * 86_400_000, issuer: 'me', audience: 'you' });
    expect(config.bodyLimitBytes).toBe(2048);
    const defaults = await load({});
    expect(defaults.jwt).toMatchObject({ accessTtlMs: 15 * 60_000, refreshTtlMs: 7 * 86_400_000, sessionMaxAgeMs: 30 * 86_400_000 });
    expect(defaults.bodyLimitBytes).toBe(102_400);
  });

  it('connects directly unless DB_TRANSACTION_POOLING says a transaction-mode pooler is in between', async () => {
    expect((await load({})).dbTransactionPooling).toBe(false);
    expect((await load({ DB_TRANSACTION_POOLING: 'true' })).dbTransactionPooling).toBe(true);
    expect((await load({ DB_TRANSACTION_POOLING: 'false' })).dbTransactionPooling).toBe(false);
    expect(await problemsOf({ DB_TRANSACTION_POOLING: 'pgbouncer' })).toEqual([expect.stringMatching(/^DB_TRANSACTION_POOLING: /)]);
  });

  it('migrates on start unless MIGRATE_ON_START says false', async () => {
    expect((await load({})).migrateOnStart).toBe(true);
    expect((await load({ MIGRATE_ON_START: 'false' })).migrateOnStart).toBe(false);
    expect((await load({ MIGRATE_ON_START: 'true' })).migrateOnStart).toBe(true);
    expect(await problemsOf({ MIGRATE_ON_START: 'sometimes' })).toEqual([expect.stringMatching(/^MIGRATE_ON_START: /)]);
  });

  it('reads the environment, the host and the log level', async () => {
    const config = await load({ NODE_ENV: 'test', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    expect([config.env, config.isProduction, config.host, config.logLevel]).toEqual(['test', false, '127.0.0.1', 'warn']);
    const defaults = await load({});
    expect([defaults.env, defaults.host, defaults.logLevel]).toEqual(['development', undefined, 'info']);
    for (const level of ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']) expect((await load({ LOG_LEVEL: level })).logLevel).toBe(level);
    expect(await problemsOf({ LOG_LEVEL: 'loud' })).toHaveLength(1);
    expect(await problemsOf({ NODE_ENV: 'staging' })).toHaveLength(1);
  });

  it('takes a blank issuer or audience as unset', async () => {
    // Blank values are unset (defaults apply); the schema's own minimum is for values with content.
    expect((await load({ JWT_ISSUER: ' ' })).jwt.issuer).toBe('rampart');
    expect((await load({ JWT_AUDIENCE: '' })).jwt.audience).toBe('rampart-api');
  });
});
