// One validated, typed, frozen configuration object built from the environment.
// Every problem is collected and reported together, so an operator fixes a deployment in one pass.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { parseBoolean, parseByteSize, parseDurationMs, parseAddressList, parseOrigins, parseTrustProxy, readPemCertificates, type TrustProxy } from './parsers';
import { parseNatMap, parseRedisUrl, type RedisNatMap, type RedisTarget } from './redis-url';

export type { RedisEndpoint, RedisNatMap, RedisTarget } from './redis-url';

export type Env = Record<string, string | undefined>;

/** Minimum secret length in bytes (HS256 wants a key at least as long as its 256-bit output). */
const MIN_SECRET_BYTES = 32;

const RATE_LIMIT_SCOPES = {
  LOGIN: { max: 5, windowMs: 15 * 60_000 },
  // Failed password checks per account (the submitted email), from any address.
  LOGIN_ACCOUNT: { max: 20, windowMs: 60 * 60_000 },
  REGISTER: { max: 5, windowMs: 60 * 60_000 },
  REFRESH: { max: 30, windowMs: 15 * 60_000 },
  API: { max: 100, windowMs: 15 * 60_000 },
} as const;
export type RateLimitScope = keyof typeof RATE_LIMIT_SCOPES;
export interface RateLimitRule {
  max: number;
  windowMs: number;
}

/** Wraps a throwing parser as a zod transform so its message becomes an issue, not a crash. */
function from<T>(parse: (raw: string) => T) {
  return z.string().transform((raw, ctx): T => {
    try {
      return parse(raw);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

function integer(min: number, max: number) {
  return from((raw) => {
    const trimmed = raw.trim();
    const n = Number(trimmed);
    if (!/^\d+$/.test(trimmed) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`must be an integer from ${min} to ${max}`);
    }
    return n;
  });
}

/** A Redis location in any of its forms (see redis-url.ts), every problem of it reported. */
function redisUrl() {
  return z.string().transform((raw, ctx): { url: string; target: RedisTarget } => {
    const parsed = parseRedisUrl(raw);
    if (!parsed.ok) {
      for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return { url: raw.trim(), target: parsed.target };
  });
}

/** REDIS_CLUSTER_NAT_MAP, every problem of it reported. */
function natMap() {
  return z.string().transform((raw, ctx): RedisNatMap => {
    const parsed = parseNatMap(raw);
    if (parsed.ok) return parsed.map;
    for (const message of parsed.problems) ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });
}

const LOG_LEVELS = ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'] as const;

const rateLimitFields = Object.fromEntries(
  Object.keys(RATE_LIMIT_SCOPES).flatMap((scope) => [
    [`RATE_LIMIT_${scope}_MAX`, integer(1, 1_000_000_000).optional()],
    [`RATE_LIMIT_${scope}_WINDOW_MS`, integer(1000, 7 * 86_400_000).optional()],
  ]),
) as Record<string, z.ZodOptional<ReturnType<typeof integer>>>;

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  PORT: integer(0, 65535).default(3000),
  HOST: z.string().min(1).optional(),
  // A second listener serving only the probes' and scrapers' endpoints; unset: none.
  OPS_PORT: integer(0, 65535).optional(),
  REDIS_URL: redisUrl().optional(),
  CACHE_REDIS_URL: redisUrl().optional(),
  // PEM file of the certificate authorities a Redis server's TLS certificate must chain to.
  REDIS_TLS_CA_FILE: from(readPemCertificates).optional(),
  // A Cluster behind NAT (containers): the addresses its nodes announce, mapped to reachable ones.
  REDIS_CLUSTER_NAT_MAP: natMap().optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w:.-]{1,64}$/, 'must be 1 to 64 of A-Z a-z 0-9 _ : . -')
    .default('rampart:'),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  JWT_ACCESS_SECRET: z.string().optional(),
  JWT_REFRESH_SECRET: z.string().optional(),
  // Earlier access-token secrets, still accepted (by kid) while tokens signed with them live.
  JWT_ACCESS_PREVIOUS_SECRETS: z.string().optional(),
  // Earlier refresh secrets, still accepted while refresh tokens issued under them live.
  JWT_REFRESH_PREVIOUS_SECRETS: z.string().optional(),
  JWT_ISSUER: z.string().min(1).default('rampart'),
  JWT_AUDIENCE: z.string().min(1).default('rampart-api'),
  JWT_ACCESS_TTL: from(parseDurationMs).default(15 * 60_000),
  JWT_REFRESH_TTL: from(parseDurationMs).default(7 * 86_400_000),
  JWT_SESSION_MAX_AGE: from(parseDurationMs).default(30 * 86_400_000),
  CORS_ORIGINS: from(parseOrigins).optional(),
  BODY_LIMIT: from(parseByteSize).default(100 * 1024),
  TRUST_PROXY: from(parseTrustProxy).optional(),
  OPS_TOKEN: z.string().optional(),
  // Who may read /health/detailed and /metrics in production without the token.
  OPS_ALLOWED_ADDRESSES: from(parseAddressList).default(['loopback']),
  ENABLE_DIAGNOSTIC_ROUTES: from(parseBoolean).default(false),
  // No default here: unset means on outside production and off in production (see loadConfig).
  API_DOCS: from(parseBoolean).optional(),
  SHUTDOWN_TIMEOUT_MS: integer(0, 600_000).default(10_000),
  SHUTDOWN_DRAIN_MS: integer(0, 60_000).default(1500),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  // Above nginx's upstream keepalive_timeout (60 s) so the proxy, not Node, closes idle sockets.
  KEEP_ALIVE_TIMEOUT_MS: integer(1000, 600_000).default(65_000),
  // Slow clients: the request headers, then the whole request, must arrive within these (Node
  // answers 408 and closes the connection); no more connections per process than MAX_CONNECTIONS.
  HEADERS_TIMEOUT_MS: integer(1000, 600_000).default(10_000),
  REQUEST_TIMEOUT_MS: integer(1000, 600_000).default(30_000),
  MAX_CONNECTIONS: integer(1, 1_000_000).default(1024),
  // Admission control (0 turns a check off): refuse new API requests with 503 while the event loop
  // runs this late, this many requests are in flight, or the heap is this full.
  SHED_EVENT_LOOP_DELAY_MS: integer(0, 60_000).default(250),
  SHED_MAX_IN_FLIGHT: integer(0, 1_000_000).default(512),
  SHED_HEAP_USED_PERCENT: integer(0, 100).default(90),
  REDIS_COMMAND_TIMEOUT_MS: integer(10, 5000).default(250),
  // With replicas (Sentinel, Cluster): how long a revocation waits for one to acknowledge it (WAIT); 0: no wait.
  REDIS_REPLICA_WAIT_MS: integer(0, 5000).default(200),
  DB_STATEMENT_TIMEOUT_MS: integer(10, 60_000).default(800),
  DB_POOL_MAX: integer(1, 200).default(10),
  // DATABASE_URL is a pooler in transaction mode (PgBouncer): no session settings at connection.
  DB_TRANSACTION_POOLING: from(parseBoolean).default(false),
  // Off where a separate step migrates before the new version starts (a Kubernetes Job).
  MIGRATE_ON_START: from(parseBoolean).default(true),
  ...rateLimitFields,
});

/**
 * Every environment variable the schema reads, taken from the schema itself so that it cannot
 * fall out of step with it: test/unit/config-reference.test.ts checks docs/configuration.md and
 * .env.production.example against this list.
 */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envSchema.shape));

export interface Config {
  readonly env: 'development' | 'test' | 'production';
  readonly isProduction: boolean;
  readonly port: number;
  readonly host: string | undefined;
  /** The operations listener's port (OPS_PORT, on HOST too): /health* and /metrics only; undefined: none. */
  readonly opsPort: number | undefined;
  /** REDIS_URL as given (trimmed): one server, a Sentinel group (redis-sentinel://) or a Cluster (redis-cluster://). */
  readonly redisUrl: string | undefined;
  readonly redisTarget: RedisTarget | undefined;
  readonly cacheRedisUrl: string | undefined;
  readonly cacheRedisTarget: RedisTarget | undefined;
  /** PEM text of the CAs that TLS connections to Redis verify the server against (REDIS_TLS_CA_FILE). */
  readonly redisTlsCa: string | undefined;
  /** Cluster nodes' announced addresses mapped to reachable ones (REDIS_CLUSTER_NAT_MAP). */
  readonly redisClusterNatMap: RedisNatMap | undefined;
  /** Prefix of every Redis key this service writes (several apps can share one Redis). */
  readonly redisKeyPrefix: string;
  readonly databaseUrl: string | undefined;
  readonly jwt: {
    readonly accessSecret: string;
    readonly previousAccessSecrets: readonly string[];
    readonly refreshSecret: string;
    readonly previousRefreshSecrets: readonly string[];
    /** True when the secrets were generated for this process (tokens die with it). */
    readonly generatedSecrets: boolean;
    readonly issuer: string;
    readonly audience: string;
    readonly accessTtlMs: number;
    readonly refreshTtlMs: number;
    readonly sessionMaxAgeMs: number;
  };
  readonly corsOrigins: readonly string[];
  readonly bodyLimitBytes: number;
  readonly trustProxy: TrustProxy;
  readonly opsToken: string | undefined;
  readonly opsAllowedAddresses: readonly string[];
  readonly enableDiagnosticRoutes: boolean;
  /** Serve GET /openapi.json and GET /api/docs (API_DOCS; on outside production, off in it). */
  readonly apiDocs: boolean;
  readonly shutdownTimeoutMs: number;
  /** After a signal: keep listening this long, answering with Connection: close, before closing. */
  readonly shutdownDrainMs: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly keepAliveTimeoutMs: number;
  /** Time a client has to send the request headers (the request line included). */
  readonly headersTimeoutMs: number;
  /** Time a client has to send the whole request, headers and body; never less than headersTimeoutMs. */
  readonly requestTimeoutMs: number;
  /** Connections one process keeps open at most; beyond it new ones are closed and counted. */
  readonly maxConnections: number;
  /** Admission control: above any of these (0: check off), API requests are refused with 503. */
  readonly shed: {
    readonly maxEventLoopDelayMs: number;
    readonly maxInFlight: number;
    readonly maxHeapUsedPercent: number;
  };
  readonly redisCommandTimeoutMs: number;
  /** Sentinel and Cluster: a revocation waits this long at most for a replica's acknowledgement (0: never). */
  readonly redisReplicaWaitMs: number;
  readonly dbStatementTimeoutMs: number;
  readonly dbPoolMax: number;
  /** DATABASE_URL reaches a transaction-mode pooler: nothing is set per connection (DB_TRANSACTION_POOLING). */
  readonly dbTransactionPooling: boolean;
  /** Apply pending migrations before listening (MIGRATE_ON_START; off when a release step migrates). */
  readonly migrateOnStart: boolean;
  readonly rateLimits: Readonly<Record<RateLimitScope, Readonly<RateLimitRule>>>;
  /** Messages for the logger once it exists (e.g. generated secrets, embedded stores). */
  readonly warnings: readonly string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function isBlank(value: string | undefined): boolean {
  return value === undefined || value.trim() === '';
}

/** Problems that only a production deployment must not have; checked on the raw strings. */
function productionProblems(env: Env): string[] {
  const problems: string[] = [];
  const requireSet = (name: string, why: string) => {
    if (isBlank(env[name])) problems.push(`${name}: required in production (${why})`);
  };
  requireSet('REDIS_URL', 'in-process stores break rate limits and revocation across workers');
  requireSet('DATABASE_URL', 'the embedded database is for development only');
  requireSet('JWT_ACCESS_SECRET', `at least ${MIN_SECRET_BYTES} bytes`);
  requireSet('JWT_REFRESH_SECRET', `at least ${MIN_SECRET_BYTES} bytes`);
  if (env.CORS_ORIGINS === undefined) {
    problems.push('CORS_ORIGINS: must be set explicitly in production (an empty value allows no browser origin)');
  }
  requireSet('TRUST_PROXY', 'the number of proxy hops or their addresses, e.g. 1 behind one nginx');
  if (env.ENABLE_DIAGNOSTIC_ROUTES !== undefined) {
    try {
      if (parseBoolean(env.ENABLE_DIAGNOSTIC_ROUTES)) {
        problems.push('ENABLE_DIAGNOSTIC_ROUTES: refused in production (it exposes /api/v1/_diag/*)');
      }
    } catch {
      // already reported by the schema
    }
  }
  if (!isBlank(env.OPS_TOKEN) && Buffer.byteLength(env.OPS_TOKEN!, 'utf8') < MIN_SECRET_BYTES) {
    problems.push(`OPS_TOKEN: must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return problems;
}

/** Settings valid one by one that contradict each other; checked when each of them is valid. */
function relationProblems(env: Env): string[] {
  const headers = envSchema.shape.HEADERS_TIMEOUT_MS.safeParse(env.HEADERS_TIMEOUT_MS);
  const request = envSchema.shape.REQUEST_TIMEOUT_MS.safeParse(env.REQUEST_TIMEOUT_MS);
  const problems: string[] = [];
  if (headers.success && request.success && headers.data > request.data) {
    // Node.js refuses it too: the headers are part of the request, so the longer limit could never apply.
    problems.push('HEADERS_TIMEOUT_MS: must not be longer than REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }
  const port = envSchema.shape.PORT.safeParse(env.PORT);
  const opsPort = envSchema.shape.OPS_PORT.safeParse(env.OPS_PORT);
  if (port.success && opsPort.success && opsPort.data !== undefined && opsPort.data !== 0 && opsPort.data === port.data) {
    problems.push('OPS_PORT: must differ from PORT (the operations listener is a second socket)');
  }
  return problems;
}

function splitList(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** Secrets are checked in every environment when given: a weak secret is never acceptable. */
function secretProblems(env: Env): string[] {
  const problems: string[] = [];
  for (const name of ['JWT_ACCESS_PREVIOUS_SECRETS', 'JWT_REFRESH_PREVIOUS_SECRETS'] as const) {
    splitList(env[name]).forEach((secret, i) => {
      if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) problems.push(`${name}: entry ${i + 1} must be at least ${MIN_SECRET_BYTES} bytes`);
    });
  }
  for (const name of ['JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET'] as const) {
    const value = env[name];
    if (value !== undefined && value !== '' && Buffer.byteLength(value, 'utf8') < MIN_SECRET_BYTES) {
      problems.push(`${name}: must be at least ${MIN_SECRET_BYTES} bytes (got ${Buffer.byteLength(value, 'utf8')})`);
    }
  }
  if (!isBlank(env.JWT_ACCESS_SECRET) && env.JWT_ACCESS_SECRET === env.JWT_REFRESH_SECRET) {
    problems.push('JWT_REFRESH_SECRET: must differ from JWT_ACCESS_SECRET');
  }
  return problems;
}

/**
 * Builds the configuration from an environment (process.env by default).
 * Throws ConfigError listing every problem; never returns a partially valid config.
 */
export function loadConfig(env: Env = process.env): Config {
  // Empty strings mean "unset" for optional variables (a common docker/env-file artefact),
  // except CORS_ORIGINS where an explicit empty value means "no origin".
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (value.trim() === '' && key !== 'CORS_ORIGINS') continue;
    cleaned[key] = value;
  }

  const problems: string[] = [];
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = issue.path.join('.') || '(environment)';
      problems.push(`${name}: ${issue.message}`);
    }
  }
  problems.push(...secretProblems(cleaned));
  problems.push(...relationProblems(cleaned));
  const nodeEnv = cleaned.NODE_ENV ?? 'development';
  if (nodeEnv === 'production') problems.push(...productionProblems(cleaned));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const e = parsed.data;
  const warnings: string[] = [];
  let accessSecret = e.JWT_ACCESS_SECRET;
  let refreshSecret = e.JWT_REFRESH_SECRET;
  const generatedSecrets = !accessSecret || !refreshSecret;
  if (!accessSecret) accessSecret = randomBytes(48).toString('base64url');
  if (!refreshSecret) refreshSecret = randomBytes(48).toString('base64url');
  if (generatedSecrets) {
    warnings.push('JWT secrets not configured: generated random ones for this process; tokens will not survive a restart or work across workers');
  }
  if (!e.REDIS_URL) {
    warnings.push('REDIS_URL not set: using an in-process store (single process only; rate limits and revocation are not shared)');
  }
  if (e.REDIS_TLS_CA_FILE !== undefined && !e.REDIS_URL?.target.tls && !e.CACHE_REDIS_URL?.target.tls) {
    warnings.push('REDIS_TLS_CA_FILE is set, but neither REDIS_URL nor CACHE_REDIS_URL uses TLS (rediss://, or tls=true): the CA is not used');
  }
  if (e.REDIS_CLUSTER_NAT_MAP !== undefined && e.REDIS_URL?.target.kind !== 'cluster' && e.CACHE_REDIS_URL?.target.kind !== 'cluster') {
    warnings.push('REDIS_CLUSTER_NAT_MAP is set, but neither REDIS_URL nor CACHE_REDIS_URL is a Cluster (redis-cluster://): the mapping is not used');
  }
  if (!e.DATABASE_URL) {
    warnings.push('DATABASE_URL not set: using embedded PGlite in memory (development only; data is lost on exit)');
  }

  const raw = e as unknown as Record<string, number | undefined>;
  const rateLimits = Object.fromEntries(
    (Object.keys(RATE_LIMIT_SCOPES) as RateLimitScope[]).map((scope) => [
      scope,
      Object.freeze({
        max: raw[`RATE_LIMIT_${scope}_MAX`] ?? RATE_LIMIT_SCOPES[scope].max,
        windowMs: raw[`RATE_LIMIT_${scope}_WINDOW_MS`] ?? RATE_LIMIT_SCOPES[scope].windowMs,
      }),
    ]),
  ) as Record<RateLimitScope, RateLimitRule>;

  const config: Config = {
    env: e.NODE_ENV,
    isProduction: e.NODE_ENV === 'production',
    port: e.PORT,
    host: e.HOST,
    opsPort: e.OPS_PORT,
    redisUrl: e.REDIS_URL?.url,
    redisTarget: e.REDIS_URL?.target,
    cacheRedisUrl: (e.CACHE_REDIS_URL ?? e.REDIS_URL)?.url,
    cacheRedisTarget: (e.CACHE_REDIS_URL ?? e.REDIS_URL)?.target,
    redisTlsCa: e.REDIS_TLS_CA_FILE,
    redisClusterNatMap: e.REDIS_CLUSTER_NAT_MAP,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    databaseUrl: e.DATABASE_URL,
    jwt: Object.freeze({
      accessSecret,
      previousAccessSecrets: Object.freeze(splitList(e.JWT_ACCESS_PREVIOUS_SECRETS)),
      refreshSecret,
      previousRefreshSecrets: Object.freeze(splitList(e.JWT_REFRESH_PREVIOUS_SECRETS)),
      generatedSecrets,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      accessTtlMs: e.JWT_ACCESS_TTL,
      refreshTtlMs: e.JWT_REFRESH_TTL,
      sessionMaxAgeMs: e.JWT_SESSION_MAX_AGE,
    }),
    corsOrigins: Object.freeze([...(e.CORS_ORIGINS ?? [])]),
    bodyLimitBytes: e.BODY_LIMIT,
    trustProxy: e.TRUST_PROXY ?? ['loopback'],
    opsToken: e.OPS_TOKEN,
    opsAllowedAddresses: Object.freeze([...e.OPS_ALLOWED_ADDRESSES]),
    enableDiagnosticRoutes: e.ENABLE_DIAGNOSTIC_ROUTES,
    // A production API does not advertise its surface unless the operator chooses to.
    apiDocs: e.API_DOCS ?? e.NODE_ENV !== 'production',
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    shutdownDrainMs: e.SHUTDOWN_DRAIN_MS,
    logLevel: e.LOG_LEVEL,
    keepAliveTimeoutMs: e.KEEP_ALIVE_TIMEOUT_MS,
    headersTimeoutMs: e.HEADERS_TIMEOUT_MS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    maxConnections: e.MAX_CONNECTIONS,
    shed: Object.freeze({
      maxEventLoopDelayMs: e.SHED_EVENT_LOOP_DELAY_MS,
      maxInFlight: e.SHED_MAX_IN_FLIGHT,
      maxHeapUsedPercent: e.SHED_HEAP_USED_PERCENT,
    }),
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    redisReplicaWaitMs: e.REDIS_REPLICA_WAIT_MS,
    dbStatementTimeoutMs: e.DB_STATEMENT_TIMEOUT_MS,
    dbPoolMax: e.DB_POOL_MAX,
    dbTransactionPooling: e.DB_TRANSACTION_POOLING,
    migrateOnStart: e.MIGRATE_ON_START,
    rateLimits: Object.freeze(rateLimits),
    warnings: Object.freeze(warnings),
  };
  return Object.freeze(config);
}
