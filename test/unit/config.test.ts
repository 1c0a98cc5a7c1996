import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { parseDurationMs, parseTrustProxy } from '../../src/config/parsers';
import { PRODUCTION_OK, problemsOf, SECRET_A, SECRET_B } from '../helpers/config';

describe('loadConfig', () => {
  it('starts on defaults outside production, generating secrets with a warning', () => {
    const config = loadConfig({});
    expect(config.env).toBe('development');
    expect(config.port).toBe(3000);
    expect(config.bodyLimitBytes).toBe(100 * 1024);
    expect(config.trustProxy).toEqual(['loopback']);
    expect(config.jwt.accessTtlMs).toBe(15 * 60_000);
    expect(config.jwt.refreshTtlMs).toBe(7 * 86_400_000);
    expect(config.jwt.issuer).toBe('rampart');
    expect(config.jwt.audience).toBe('rampart-api');
    expect(Buffer.byteLength(config.jwt.accessSecret)).toBeGreaterThanOrEqual(32);
    expect(config.jwt.accessSecret).not.toBe(config.jwt.refreshSecret);
    expect(config.jwt.generatedSecrets).toBe(true);
    expect(config.warnings.join('\n')).toMatch(/JWT secrets not configured/);
    expect(config.warnings.join('\n')).toMatch(/REDIS_URL not set/);
    expect(config.rateLimits.LOGIN).toEqual({ max: 5, windowMs: 15 * 60_000 });
    expect(config.rateLimits.REGISTER).toEqual({ max: 5, windowMs: 60 * 60_000 });
    expect(config.rateLimits.REFRESH).toEqual({ max: 30, windowMs: 15 * 60_000 });
    expect(config.rateLimits.API).toEqual({ max: 100, windowMs: 15 * 60_000 });
  });

  it('is frozen, nested objects included', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.jwt)).toBe(true);
    expect(Object.isFrozen(config.rateLimits.API)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('accepts a complete production configuration', () => {
    const config = loadConfig(PRODUCTION_OK);
    expect(config.isProduction).toBe(true);
    expect(config.trustProxy).toBe(1);
    expect(config.corsOrigins).toEqual(['https://app.example.com']);
    expect(config.jwt.generatedSecrets).toBe(false);
    expect(config.cacheRedisUrl).toBe(PRODUCTION_OK.REDIS_URL);
  });

  it('lists every missing production variable at once', () => {
    const problems = problemsOf({ NODE_ENV: 'production' });
    for (const name of ['REDIS_URL', 'DATABASE_URL', 'JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET', 'CORS_ORIGINS', 'TRUST_PROXY']) {
      expect(
        problems.some((p) => p.startsWith(`${name}:`)),
        `${name} reported`,
      ).toBe(true);
    }
    expect(problems.length).toBeGreaterThanOrEqual(6);
  });

  it('reports schema errors and production errors together', () => {
    const problems = problemsOf({ ...PRODUCTION_OK, PORT: 'eighty', BODY_LIMIT: 'lots', REDIS_URL: undefined });
    expect(problems.some((p) => p.startsWith('PORT:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('BODY_LIMIT:'))).toBe(true);
    expect(problems.some((p) => p.startsWith('REDIS_URL:'))).toBe(true);
  });

  it('refuses weak and identical secrets in every environment', () => {
    expect(problemsOf({ JWT_ACCESS_SECRET: 'short', JWT_REFRESH_SECRET: SECRET_B })).toEqual(['JWT_ACCESS_SECRET: must be at least 32 bytes (got 5)']);
    expect(problemsOf({ ...PRODUCTION_OK, JWT_REFRESH_SECRET: SECRET_A })).toEqual(['JWT_REFRESH_SECRET: must differ from JWT_ACCESS_SECRET']);
  });

  it('never echoes a secret in its messages', () => {
    const weak = 'hunter2-canary';
    const problems = problemsOf({ ...PRODUCTION_OK, JWT_ACCESS_SECRET: weak });
    expect(problems.join('\n')).not.toContain(weak);
  });

  it('refuses TRUST_PROXY=true everywhere and diagnostic routes in production', () => {
    expect(problemsOf({ TRUST_PROXY: 'true' })[0]).toMatch(/^TRUST_PROXY: must not be true/);
    expect(problemsOf({ ...PRODUCTION_OK, ENABLE_DIAGNOSTIC_ROUTES: 'true' })).toEqual([
      'ENABLE_DIAGNOSTIC_ROUTES: refused in production (it exposes /api/v1/_diag/*)',
    ]);
  });

  it('parses booleans as written, "false" being false', () => {
    expect(loadConfig({ ENABLE_DIAGNOSTIC_ROUTES: 'false' }).enableDiagnosticRoutes).toBe(false);
    expect(loadConfig({ ENABLE_DIAGNOSTIC_ROUTES: 'FALSE' }).enableDiagnosticRoutes).toBe(false);
    expect(loadConfig({ ENABLE_DIAGNOSTIC_ROUTES: '0' }).enableDiagnosticRoutes).toBe(false);
    expect(loadConfig({ ENABLE_DIAGNOSTIC_ROUTES: 'true' }).enableDiagnosticRoutes).toBe(true);
    expect(problemsOf({ ENABLE_DIAGNOSTIC_ROUTES: 'maybe' })[0]).toMatch(/^ENABLE_DIAGNOSTIC_ROUTES: must be true or false/);
  });

  it('accepts only exact CORS origins', () => {
    expect(loadConfig({ CORS_ORIGINS: 'https://a.example.com, http://localhost:5173' }).corsOrigins).toEqual([
      'https://a.example.com',
      'http://localhost:5173',
    ]);
    expect(loadConfig({ ...PRODUCTION_OK, CORS_ORIGINS: '' }).corsOrigins).toEqual([]);
    for (const bad of ['*', 'null', 'https://a.example.com/', 'a.example.com', 'ftp://a.example.com']) {
      expect(problemsOf({ CORS_ORIGINS: bad })[0], bad).toMatch(/^CORS_ORIGINS:/);
    }
  });

  it('reads rate limits and sizes from the environment', () => {
    const config = loadConfig({ RATE_LIMIT_LOGIN_MAX: '7', RATE_LIMIT_API_WINDOW_MS: '60000', BODY_LIMIT: '1mb', JWT_ACCESS_TTL: '5m' });
    expect(config.rateLimits.LOGIN).toEqual({ max: 7, windowMs: 15 * 60_000 });
    expect(config.rateLimits.API).toEqual({ max: 100, windowMs: 60_000 });
    expect(config.bodyLimitBytes).toBe(1024 * 1024);
    expect(config.jwt.accessTtlMs).toBe(5 * 60_000);
    expect(problemsOf({ RATE_LIMIT_LOGIN_MAX: '0' })[0]).toMatch(/^RATE_LIMIT_LOGIN_MAX:/);
  });

  it('reads the ops allow-list, loopback by default', () => {
    expect(loadConfig({}).opsAllowedAddresses).toEqual(['loopback']);
    expect(loadConfig({ OPS_ALLOWED_ADDRESSES: '10.0.0.0/8, 192.168.1.5' }).opsAllowedAddresses).toEqual(['10.0.0.0/8', '192.168.1.5']);
    expect(problemsOf({ OPS_ALLOWED_ADDRESSES: 'everyone' })[0]).toMatch(/^OPS_ALLOWED_ADDRESSES:/);
  });

  it('serves the API description outside production and not in it unless API_DOCS=true', () => {
    expect(loadConfig({}).apiDocs).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).apiDocs).toBe(true);
    expect(loadConfig({ API_DOCS: 'false' }).apiDocs).toBe(false);
    expect(loadConfig({ API_DOCS: 'off' }).apiDocs).toBe(false);
    expect(loadConfig(PRODUCTION_OK).apiDocs).toBe(false);
    expect(loadConfig({ ...PRODUCTION_OK, API_DOCS: 'false' }).apiDocs).toBe(false);
    expect(loadConfig({ ...PRODUCTION_OK, API_DOCS: 'true' }).apiDocs).toBe(true);
    expect(loadConfig({ ...PRODUCTION_OK, API_DOCS: 'YES' }).apiDocs).toBe(true);
    // An empty value (an env-file placeholder) means unset, so production stays closed.
    expect(loadConfig({ ...PRODUCTION_OK, API_DOCS: '' }).apiDocs).toBe(false);
    expect(problemsOf({ API_DOCS: 'sometimes' })).toEqual(['API_DOCS: must be true or false']);
    expect(problemsOf({ ...PRODUCTION_OK, API_DOCS: 'sometimes' })).toEqual(['API_DOCS: must be true or false']);
  });

  it('keeps idle connections longer than nginx, and slow clients shorter', () => {
    const config = loadConfig({ KEEP_ALIVE_TIMEOUT_MS: '75000' });
    expect(config.keepAliveTimeoutMs).toBe(75_000);
    expect(loadConfig({}).keepAliveTimeoutMs).toBeGreaterThan(60_000); // above nginx's upstream keep-alive
    // Headers within nginx's client_header_timeout (10 s), the whole request within 30 s.
    const nginxHeaders = /^\s*client_header_timeout (\d+)s;$/m.exec(readFileSync(path.join(__dirname, '../../nginx/nginx.conf'), 'utf8'));
    expect(loadConfig({}).headersTimeoutMs).toBe(Number(nginxHeaders?.[1]) * 1000);
    expect(loadConfig({}).headersTimeoutMs).toBe(10_000);
    expect(loadConfig({}).requestTimeoutMs).toBe(30_000);
  });
});

describe('parsers', () => {
  it('parses durations', () => {
    expect(parseDurationMs('900')).toBe(900_000);
    expect(parseDurationMs('15m')).toBe(900_000);
    expect(parseDurationMs('7d')).toBe(7 * 86_400_000);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(() => parseDurationMs('soon')).toThrow(/duration/);
    expect(() => parseDurationMs('0')).toThrow(/positive/);
  });

  it('parses TRUST_PROXY into hop counts or address lists', () => {
    expect(parseTrustProxy('2')).toBe(2);
    expect(parseTrustProxy('loopback, 10.0.0.0/8')).toEqual(['loopback', '10.0.0.0/8']);
    expect(parseTrustProxy('false')).toBe(false);
    expect(() => parseTrustProxy('*')).toThrow(/must not be true/);
    expect(() => parseTrustProxy('10.0.0.1, 0.0.0.0/0')).toThrow(/must not trust every address/);
    expect(() => parseTrustProxy('not-an-ip')).toThrow(/hop count/);
  });
});
