// Security headers for a JSON API. helmet decides the headers; since they never depend on the
// request, they are computed once at start-up and then set as a fixed list (cheaper per request).
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

function jsonApiHelmet() {
  return helmet({
    // Nothing an API response says should ever load or run in a browser context.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] },
    },
    frameguard: { action: 'deny' },
    // Stryker disable ObjectLiteral: these four restate helmet 8's defaults, kept so that a new default cannot change a header unseen (test/unit/request-hardening.test.ts holds the headers to docs/security.md)
    strictTransportSecurity: { maxAge: 31_536_000, includeSubDomains: true },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginOpenerPolicy: { policy: 'same-origin' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    // Stryker restore ObjectLiteral
  });
}

/** Runs helmet once against a stub response and records what it sets. */
export function computeSecurityHeaders(): [string, string][] {
  const headers = new Map<string, string>();
  const stub = {
    setHeader: (name: string, value: string | number | readonly string[]) => headers.set(name, String(value)),
    // Stryker disable next-line ArrowFunction: helmet removes only X-Powered-By, which the stub never holds
    removeHeader: (name: string) => headers.delete(name),
  };
  // Stryker disable next-line BooleanLiteral: helmet 8 completes synchronously; the flag guards against a version that would not
  let completed = false;
  jsonApiHelmet()(stub as unknown as IncomingMessage, stub as unknown as ServerResponse, () => {
    completed = true;
  });
  // Stryker disable next-line StringLiteral: never thrown by helmet 8, as above
  if (!completed) throw new Error('helmet did not complete synchronously; cannot precompute headers');
  return [...headers.entries()];
}
