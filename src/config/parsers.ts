// Small parsers for environment strings. Each one returns a value or throws an Error whose
// message is written for an operator ("must be ..."), so the config loader can list them all.
import { readFileSync } from 'node:fs';
import bytes from 'bytes';
import proxyAddr from 'proxy-addr';

const DURATION = /^(\d+)\s*(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "15m", "7d", "900" (seconds) → milliseconds. */
export function parseDurationMs(raw: string): number {
  const match = DURATION.exec(raw.trim());
  if (!match) throw new Error('must be a duration such as 900, 15m, 12h or 7d');
  const amount = Number(match[1]);
  // Without a unit, seconds; the pattern admits only units the table has.
  const ms = amount * UNIT_MS[match[2] ?? 's']!;
  if (!Number.isSafeInteger(ms) || ms <= 0) throw new Error('must be a positive duration');
  return ms;
}

// Whole bytes, or a number with a unit. Checked before bytes.parse(), which reads what it can of
// anything: "1e3" as 1, "12abc" as 12, "1.5" as 1.
const WHOLE_BYTES = /^\d+ *b?$/i;
const WITH_UNIT = /^(\d+|\d+\.\d+) *[kmg]b$/i;

/** "100kb", "1mb", "2048" → bytes. */
export function parseByteSize(raw: string): number {
  const text = raw.trim();
  const value = WHOLE_BYTES.test(text) || WITH_UNIT.test(text) ? (bytes.parse(text) ?? Number.NaN) : Number.NaN;
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error('must be a size such as 100kb or 1mb');
  }
  return value;
}

/** Booleans: only the words people actually write; "false" is false. */
export function parseBoolean(raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off', ''].includes(value)) return false;
  throw new Error('must be true or false');
}

export type TrustProxy = number | string[] | false;

/**
 * TRUST_PROXY: a hop count, or addresses/CIDRs/proxy-addr names ("loopback", "uniquelocal").
 * `true` is refused everywhere: it trusts any X-Forwarded-For and lets a client pick its own IP.
 */
export function parseTrustProxy(raw: string): TrustProxy {
  const value = raw.trim();
  if (/^(true|yes|on|\*)$/i.test(value)) {
    throw new Error('must not be true: give a hop count (e.g. 1) or proxy addresses; true lets clients forge their IP');
  }
  if (/^(false|no|off|0)$/i.test(value) || value === '') return false;
  if (/^\d+$/.test(value)) return Number(value);
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.some((entry) => /^(0\.0\.0\.0\/0|::\/0|::\/\d|0\.0\.0\.0)$/.test(entry))) {
    throw new Error('must not trust every address: that is the same as true');
  }
  try {
    proxyAddr.compile(list);
  } catch {
    throw new Error('must be a hop count or a comma-separated list of IP addresses, CIDRs or loopback/linklocal/uniquelocal');
  }
  return list;
}

/** A comma-separated list of addresses, CIDRs or proxy-addr names (loopback, uniquelocal...). */
export function parseAddressList(raw: string): string[] {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  try {
    proxyAddr.compile(list);
  } catch {
    throw new Error('must be a comma-separated list of IP addresses, CIDRs or loopback/linklocal/uniquelocal');
  }
  return list;
}

/** CORS_ORIGINS: exact origins only (scheme://host[:port]); no wildcard, no "null". */
export function parseOrigins(raw: string): string[] {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const origin of list) {
    if (origin === '*' || origin.toLowerCase() === 'null') {
      throw new Error(`must list exact origins; "${origin}" is not allowed`);
    }
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      throw new Error(`"${origin}" is not an origin such as https://app.example.com`);
    }
    if (parsed.origin !== origin || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new Error(`"${origin}" is not an exact origin (scheme://host[:port], no path or trailing slash)`);
    }
  }
  return list;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;

/** A file of PEM certificates (a CA bundle) → its text; read once, at start-up. */
export function readPemCertificates(raw: string): string {
  let text: string;
  try {
    // eslint-disable-next-line security/detect-non-literal-fs-filename -- the operator names the file (REDIS_TLS_CA_FILE)
    text = readFileSync(raw.trim(), 'utf8');
  } catch (err) {
    throw new Error(`cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  if (!PEM_CERTIFICATE.test(text)) throw new Error('the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  return text;
}
