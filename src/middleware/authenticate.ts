// Bearer authentication: the Authorization header only (never a query string or cookie), JWT
// verification in memory, then one store round trip for revocation. Store down: 503, fast.
//
// The revocation read can start early: `startRevocationCheck` runs before the rate limiter, so the
// limiter's counter and the revocation MGET leave in the same tick and ioredis' auto-pipelining
// sends them in one write: one round trip for both. The decisions keep their order (a refused
// request is refused by the limiter before anything looks at its token).
import type { Request, RequestHandler } from 'express';
import type { AccessClaims, AccessTokens } from '../lib/access-tokens';
import { AppError } from '../lib/errors';
import { requestContext } from '../lib/request-context';
import type { Sessions } from '../lib/sessions';

/** A revocation read started early, carried on the request (src/types/express.d.ts). */
export interface EarlyRevocationCheck {
  token: string;
  claims: AccessClaims;
  active: Promise<boolean>;
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

export interface AuthenticateOptions {
  tokens: AccessTokens;
  sessions: Sessions;
  onFailure?: (reason: string) => void;
  /** The revocation store could not answer (the request is refused with 503). */
  onStoreError?: () => void;
}

function bearerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  return header === undefined ? undefined : BEARER.exec(header)?.[1];
}

/** For a request with a valid-looking bearer token, starts its revocation read now (see above). */
export function startRevocationCheck({ tokens, sessions }: Pick<AuthenticateOptions, 'tokens' | 'sessions'>): RequestHandler {
  return (req, _res, next) => {
    const token = bearerToken(req);
    // Stryker disable ConditionalExpression: a shortcut: verifying no token throws, and is caught below
    // eslint-disable-next-line security/detect-possible-timing-attacks -- a presence check against undefined, not a comparison with a secret
    if (token !== undefined) {
      // Stryker restore ConditionalExpression
      try {
        const claims = tokens.verify(token);
        const active = sessions.isActive(claims);
        active.catch(() => undefined); // awaited (and its failure answered) by authenticate, if reached
        req.earlyRevocationCheck = { token, claims, active };
      } catch {
        // invalid: authenticate will say why, if the route needs it
      }
    }
    next();
  };
}

export function authenticate({ tokens, sessions, onFailure, onStoreError }: AuthenticateOptions): RequestHandler {
  // The security event is written by the error handler, one per refused request.
  const refuse = (code: 'unauthorized' | 'invalid_token' | 'token_revoked', reason: string, userId?: string) => {
    onFailure?.(reason);
    return new AppError(code, { security: { reason, userId } });
  };

  return async (req, _res, next) => {
    if (req.headers.authorization === undefined) return next(refuse('unauthorized', 'no credentials'));
    const token = bearerToken(req);
    // eslint-disable-next-line security/detect-possible-timing-attacks -- a presence check against undefined, not a comparison with a secret
    if (token === undefined) return next(refuse('unauthorized', 'not a bearer credential'));

    const early = req.earlyRevocationCheck?.token === token ? req.earlyRevocationCheck : undefined;
    let claims: AccessClaims;
    if (early) {
      claims = early.claims;
    } else {
      try {
        claims = tokens.verify(token);
      } catch (err) {
        // Stryker disable next-line StringLiteral: verify() throws only AppErrors with an Error cause; the fallback is for a future one
        const reason = err instanceof AppError && err.cause instanceof Error ? err.cause.message : 'invalid';
        return next(refuse('invalid_token', reason));
      }
    }
    // Throws service_unavailable when the store cannot answer: fail closed.
    let active: boolean;
    try {
      active = await (early ? early.active : sessions.isActive(claims));
    } catch (err) {
      onStoreError?.();
      return next(err);
    }
    if (!active) return next(refuse('token_revoked', 'revoked', claims.sub));

    req.auth = claims;
    const ctx = requestContext.getStore();
    if (ctx) ctx.userId = claims.sub;
    next();
  };
}
