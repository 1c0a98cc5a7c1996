// Keeps docs/configuration.md and .env.production.example in step with the code. The list of
// variables comes from the config schema itself (CONFIG_VARIABLES), the rest from scanning the
// sources and deployment files, so a variable added, removed or re-defaulted in code without the
// reference following fails here rather than surprising an operator.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, loadConfig, type Config, type Env, type RateLimitScope } from '../../src/config';
import { PRODUCTION_OK, problemsOf, SECRET_A, SECRET_B } from '../helpers/config';

const ROOT = path.resolve(__dirname, '../..');
const read = (rel: string): string => readFileSync(path.join(ROOT, rel), 'utf8');

interface Row {
  names: string[];
  cells: string[];
}

/** Rows of every table whose first cell names variables in backticks (code blocks skipped). */
function tableRows(markdown: string): Row[] {
  const rows: Row[] = [];
  let inCode = false;
  for (const line of markdown.split('\n')) {
    if (line.trimStart().startsWith('```')) inCode = !inCode;
    if (inCode || !line.trimStart().startsWith('|')) continue;
    const cells = line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
    const names = [...cells[0]!.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((m) => m[1]!);
    if (names.length > 0) rows.push({ names, cells });
  }
  return rows;
}

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(rel, suffix);
    return entry.isFile() && entry.name.endsWith(suffix) ? [rel] : [];
  });
}

function collect(into: Map<string, Set<string>>, file: string, text: string, patterns: RegExp[]): void {
  for (const pattern of patterns) {
    for (const match of text.matchAll(pattern)) {
      const name = match[1]!;
      if (!into.has(name)) into.set(name, new Set());
      into.get(name)!.add(file);
    }
  }
}

/**
 * Variables read in src/: `process.env.NAME`, `process.env['NAME']`, and `env.NAME` where a bare
 * `env` stands for the environment (loadConfig's argument, a parameter defaulting to process.env).
 */
function readInSource(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const file of filesUnder('src', '.ts')) {
    collect(found, file, read(file), [/process\.env\.([A-Za-z_]\w*)/g, /process\.env\[\s*['"`]([A-Za-z_]\w*)['"`]\s*\]/g, /(?<![\w.$])env\.([A-Za-z_]\w*)/g]);
  }
  // Mutation testing (npm run test:mutation) runs this file over instrumented sources, which read
  // the active mutant from __STRYKER_ACTIVE_MUTANT__: the tool's variable, not configuration.
  found.delete('__STRYKER_ACTIVE_MUTANT__');
  return found;
}

// Shell variables that are not configuration.
const SHELL_BUILTINS = new Set([
  'BASH_SOURCE',
  'SECONDS',
  'HOME',
  'PATH',
  'PWD',
  'OLDPWD',
  'RANDOM',
  'LINENO',
  'FUNCNAME',
  'IFS',
  'UID',
  'EUID',
  'OPTARG',
  'OPTIND',
]);

function uncommented(text: string): string {
  return text
    .split('\n')
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('\n');
}

/** Variables docker compose interpolates from the env file. */
function composeVariables(): Set<string> {
  const text = uncommented(read('docker-compose.production.yml'));
  return new Set([...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!));
}

/** Variables the PM2 process file and the operator scripts read. */
function readByDeploymentFiles(): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  collect(found, 'ecosystem.config.js', read('ecosystem.config.js'), [/process\.env\.([A-Za-z_]\w*)/g]);
  for (const name of composeVariables()) found.set(name, new Set(['docker-compose.production.yml']));
  for (const file of readdirSync(path.join(ROOT, 'scripts'))) {
    const rel = `scripts/${file}`;
    // Shell scripts name variables as $X or ${X}; JavaScript and TypeScript ones as process.env.X.
    const pattern = /\.(c|m)?[jt]s$/.test(file) ? /process\.env\.([A-Za-z_]\w*)/g : /\$\{?([A-Z][A-Z0-9_]*)/g;
    collect(found, rel, uncommented(read(rel)), [pattern]);
  }
  for (const name of SHELL_BUILTINS) found.delete(name);
  return found;
}

const doc = read('docs/configuration.md');
const rows = tableRows(doc);
const documented = new Set(rows.flatMap((r) => r.names));
const schema = new Set(CONFIG_VARIABLES);

/** The row of a schema variable: one variable per row, four columns. */
function rowOf(name: string): Row {
  const matching = rows.filter((r) => r.names.includes(name));
  expect(matching.length, `${name}: documented in exactly one table row`).toBe(1);
  const row = matching[0]!;
  expect(row.names, `${name}: alone in its row`).toEqual([name]);
  expect(row.cells.length, `${name}: variable | meaning | default outside production | production`).toBe(4);
  return row;
}

const variableOf = (problem: string): string => problem.slice(0, problem.indexOf(':'));

/** What production requires, as the production checks report it: every problem of an empty production env. */
const PRODUCTION_REQUIRED = [...new Set(problemsOf({ NODE_ENV: 'production' }).map(variableOf))];

/**
 * Where each variable lands in Config, to compare documented defaults with applied ones. `null`
 * marks a variable whose default cannot be written down (a secret generated per process). Every
 * schema variable must be classified here, so a new one cannot skip the default check.
 */
const PROPERTY: Record<string, ((c: Config) => unknown) | null> = {
  NODE_ENV: (c) => c.env,
  PORT: (c) => c.port,
  HOST: (c) => c.host,
  OPS_PORT: (c) => c.opsPort,
  REDIS_URL: (c) => c.redisUrl,
  CACHE_REDIS_URL: (c) => c.cacheRedisUrl,
  REDIS_TLS_CA_FILE: (c) => c.redisTlsCa,
  REDIS_CLUSTER_NAT_MAP: (c) => c.redisClusterNatMap,
  REDIS_KEY_PREFIX: (c) => c.redisKeyPrefix,
  DATABASE_URL: (c) => c.databaseUrl,
  JWT_ACCESS_SECRET: null,
  JWT_REFRESH_SECRET: null,
  JWT_ACCESS_PREVIOUS_SECRETS: (c) => c.jwt.previousAccessSecrets,
  JWT_REFRESH_PREVIOUS_SECRETS: (c) => c.jwt.previousRefreshSecrets,
  JWT_ISSUER: (c) => c.jwt.issuer,
  JWT_AUDIENCE: (c) => c.jwt.audience,
  JWT_ACCESS_TTL: (c) => c.jwt.accessTtlMs,
  JWT_REFRESH_TTL: (c) => c.jwt.refreshTtlMs,
  JWT_SESSION_MAX_AGE: (c) => c.jwt.sessionMaxAgeMs,
  CORS_ORIGINS: (c) => c.corsOrigins,
  BODY_LIMIT: (c) => c.bodyLimitBytes,
  TRUST_PROXY: (c) => c.trustProxy,
  OPS_TOKEN: (c) => c.opsToken,
  OPS_ALLOWED_ADDRESSES: (c) => c.opsAllowedAddresses,
  ENABLE_DIAGNOSTIC_ROUTES: (c) => c.enableDiagnosticRoutes,
  API_DOCS: (c) => c.apiDocs,
  SHUTDOWN_TIMEOUT_MS: (c) => c.shutdownTimeoutMs,
  SHUTDOWN_DRAIN_MS: (c) => c.shutdownDrainMs,
  LOG_LEVEL: (c) => c.logLevel,
  KEEP_ALIVE_TIMEOUT_MS: (c) => c.keepAliveTimeoutMs,
  HEADERS_TIMEOUT_MS: (c) => c.headersTimeoutMs,
  REQUEST_TIMEOUT_MS: (c) => c.requestTimeoutMs,
  MAX_CONNECTIONS: (c) => c.maxConnections,
  SHED_EVENT_LOOP_DELAY_MS: (c) => c.shed.maxEventLoopDelayMs,
  SHED_MAX_IN_FLIGHT: (c) => c.shed.maxInFlight,
  SHED_HEAP_USED_PERCENT: (c) => c.shed.maxHeapUsedPercent,
  REDIS_COMMAND_TIMEOUT_MS: (c) => c.redisCommandTimeoutMs,
  REDIS_REPLICA_WAIT_MS: (c) => c.redisReplicaWaitMs,
  DB_STATEMENT_TIMEOUT_MS: (c) => c.dbStatementTimeoutMs,
  DB_POOL_MAX: (c) => c.dbPoolMax,
  DB_TRANSACTION_POOLING: (c) => c.dbTransactionPooling,
  MIGRATE_ON_START: (c) => c.migrateOnStart,
};

function propertyOf(name: string): ((c: Config) => unknown) | null | undefined {
  const rate = /^RATE_LIMIT_([A-Z_]+?)_(MAX|WINDOW_MS)$/.exec(name);
  if (rate) {
    const scope = rate[1] as RateLimitScope;
    return rate[2] === 'MAX' ? (c) => c.rateLimits[scope].max : (c) => c.rateLimits[scope].windowMs;
  }
  return PROPERTY[name];
}

const missing = (names: Iterable<string>, from: Set<string>): string[] => [...names].filter((n) => !from.has(n)).sort();

describe('CONFIG_VARIABLES', () => {
  it('is the schema: every variable a problem can name, the rate-limit family and API_DOCS', () => {
    expect(CONFIG_VARIABLES).toContain('API_DOCS');
    expect(CONFIG_VARIABLES).toContain('RATE_LIMIT_LOGIN_WINDOW_MS');
    expect(new Set(CONFIG_VARIABLES).size).toBe(CONFIG_VARIABLES.length);
    const everyBad = Object.fromEntries(CONFIG_VARIABLES.map((n) => [n, '\u0000not valid for anything']));
    for (const problem of problemsOf({ ...everyBad, NODE_ENV: 'production' })) {
      expect(CONFIG_VARIABLES, problem).toContain(variableOf(problem));
    }
  });
});

describe('docs/configuration.md', () => {
  it('lists every variable the schema reads', () => {
    expect(missing(schema, documented), 'read by src/config but not documented').toEqual([]);
  });

  it('lists every variable read elsewhere in src/ and by the deployment files', () => {
    const elsewhere = new Map([...readInSource(), ...readByDeploymentFiles()]);
    const undocumented = [...elsewhere].filter(([name]) => !documented.has(name)).map(([name, files]) => `${name} (${[...files].join(', ')})`);
    expect(undocumented, 'read but not documented').toEqual([]);
  });

  it('lists nothing that nothing reads', () => {
    const readSomewhere = new Set([...schema, ...readInSource().keys(), ...readByDeploymentFiles().keys()]);
    expect(missing(documented, readSomewhere), 'documented but read nowhere').toEqual([]);
  });

  it('gives each schema variable its own row with the default the code applies outside production', () => {
    const base = loadConfig({ NODE_ENV: 'development' });
    for (const name of CONFIG_VARIABLES) {
      const property = propertyOf(name);
      expect(property, `${name}: add it to PROPERTY in this test`).not.toBeUndefined();
      const defaultCell = rowOf(name).cells[2]!;
      if (!property) continue;
      const literal = /^`([^`]*)`/.exec(defaultCell)?.[1];
      if (literal === undefined) {
        // Only "nothing" may be written as prose; a real value must be a literal to compare.
        const applied = property(base);
        expect(
          applied === undefined || (Array.isArray(applied) && applied.length === 0),
          `${name}: default ${JSON.stringify(applied)} must be documented as a \`literal\``,
        ).toBe(true);
        expect(defaultCell, `${name}: an absent default is documented as "unset..." or "same as..."`).toMatch(/^(unset|same as)\b/);
        continue;
      }
      // Giving the documented default explicitly must change nothing.
      const explicit = loadConfig({ NODE_ENV: 'development', [name]: literal });
      expect(property(explicit), `${name}: documented default \`${literal}\``).toEqual(property(base));
    }
  });

  it('says which variables production requires and which it refuses', () => {
    expect(PRODUCTION_REQUIRED).toEqual(
      expect.arrayContaining(['REDIS_URL', 'DATABASE_URL', 'JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET', 'CORS_ORIGINS', 'TRUST_PROXY']),
    );
    for (const name of CONFIG_VARIABLES) {
      const production = rowOf(name).cells[3]!;
      expect(/^required\b/.test(production), `${name}: production column "${production}"`).toBe(PRODUCTION_REQUIRED.includes(name));
      if (/^refused\b/.test(production)) {
        expect(problemsOf({ ...PRODUCTION_OK, [name]: 'true' }).map(variableOf), `${name} refused in production`).toContain(name);
      }
      // The "What production refuses" section names every requirement too.
      if (PRODUCTION_REQUIRED.includes(name)) expect(doc.split('## What production refuses')[1]?.split('\n## ')[0]).toContain(`\`${name}\``);
    }
    expect(problemsOf(PRODUCTION_OK)).toEqual([]);
    expect(loadConfig(PRODUCTION_OK).apiDocs).toBe(false);
  });
});

describe('.env.production.example', () => {
  const text = read('.env.production.example');
  const lines = [...text.matchAll(/^[ \t]*(#[ \t]*)?([A-Z][A-Z0-9_]*)=(.*)$/gm)].map((m) => ({
    commented: m[1] !== undefined,
    name: m[2]!,
    value: m[3]!.trim(),
  }));
  const active = lines.filter((l) => !l.commented);

  it('sets only variables the app or docker compose reads', () => {
    const known = new Set([...CONFIG_VARIABLES, ...composeVariables()]);
    expect(missing(new Set(lines.map((l) => l.name)), known)).toEqual([]);
  });

  it('has every variable production requires, and API_DOCS', () => {
    expect(missing(PRODUCTION_REQUIRED, new Set(active.map((l) => l.name)))).toEqual([]);
    expect(lines.some((l) => l.name === 'API_DOCS')).toBe(true);
  });

  it('is a valid production configuration once the blanks are filled in', () => {
    const fill: Env = {
      REDIS_URL: 'redis://:password@127.0.0.1:6379/0',
      CACHE_REDIS_URL: 'redis://:password@127.0.0.1:6380/0',
      DATABASE_URL: 'postgres://rampart:password@127.0.0.1:5432/rampart',
      JWT_ACCESS_SECRET: SECRET_A,
      JWT_REFRESH_SECRET: SECRET_B,
      OPS_TOKEN: 'c'.repeat(40),
    };
    const env: Env = {};
    for (const { name, value } of active) env[name] = value === '' ? fill[name] : value;
    expect(problemsOf({ ...env, NODE_ENV: 'production' })).toEqual([]);
  });
});
