// Redaction of secrets before anything reaches a log line. Applied by the logger's format, so a
// careless `logger.info('x', { body })` is still safe. Kept cheap: it walks objects once and only
// rewrites strings that look like credentials.

export const REDACTED = '[REDACTED]';

// Keys whose values are never logged, whatever they contain.
const SENSITIVE_KEY = /pass(word|wd|phrase)?|secret|token|authorization|cookie|api[-_]?key|credential|signature|^otp$|^pin$/i;
// Query parameters carrying credentials (OAuth codes, tokens in links).
const SENSITIVE_PARAM = /pass(word)?|secret|token|code|key|auth|sig(nature)?|session|credential/i;
// JWTs (three base64url parts, the first starting with eyJ) and bearer/basic credentials.
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g;
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
// URLs with userinfo (redis://:pass@host, postgres://user:pass@host).
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]*)@/gi;
// "password=..." or "token: ..." inside free text (error messages, SQL errors, URLs).
const INLINE_SECRET = /\b(pass(?:word|wd)?|secret|token|api[-_]?key)(\s*[=:]\s*)([^\s&"',;]+)/gi;

// One cheap scan decides whether any of the replacements below can apply (most strings: no).
const MAYBE_SECRET = /eyJ|bearer|basic|:\/\/|pass|secret|token|api[-_]?key/i;

export function redactString(value: string): string {
  if (value.length < 8 || !MAYBE_SECRET.test(value)) return value;
  return value
    .replace(JWT, REDACTED)
    .replace(AUTH_SCHEME, (_m, scheme: string) => `${scheme} ${REDACTED}`)
    .replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`)
    .replace(INLINE_SECRET, (_m, name: string, sep: string) => `${name}${sep}${REDACTED}`);
}

/** Redacts credential-bearing parameters from a URL path with query, e.g. /reset?token=abc. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q === -1) return redactString(url);
  const path = url.slice(0, q);
  const query = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq === -1) return pair;
      let key = pair.slice(0, eq);
      try {
        key = decodeURIComponent(key);
      } catch {
        // keep the raw key
      }
      return SENSITIVE_PARAM.test(key) ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
    })
    .join('&');
  return redactString(`${path}?${query}`);
}

/** Deep copy with sensitive keys and credential-looking strings redacted. Handles cycles. */
export function redact(value: unknown, visited?: WeakSet<object>, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 8) return '[Truncated]';
  // Created only for objects: most logged fields are strings and numbers.
  const seen = visited ?? new WeakSet<object>();
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, seen, depth + 1));
  if (value instanceof Error) {
    return { name: value.name, message: redactString(value.message), stack: value.stack && redactString(value.stack) };
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) out[key] = redactField(key, v, seen, depth + 1);
  return out;
}

/** One named value: redacted whole when its name says it is a credential. */
export function redactField(key: string, value: unknown, seen?: WeakSet<object>, depth = 0): unknown {
  if (SENSITIVE_KEY.test(key) && value !== undefined && value !== null && typeof value !== 'boolean') return REDACTED;
  return redact(value, seen, depth);
}
