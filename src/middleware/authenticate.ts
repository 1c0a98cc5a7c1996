// Bearer authentication: the Authorization header only (never a query string or cookie), JWT
// verification in memory, then one store round trip for revocation. Store down: 503, fast.
import type { Request, RequestHandler } from 'express';
import type { AccessClaims, AccessTokens } from '../lib/access-tokens';
import { AppError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { requestContext } from '../lib/request-context';
import type { Sessions } from '../modules/auth/sessions';

declare module 'express-serve-static-core' {
  interface Request {
    auth?: AccessClaims;
  }
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

export interface AuthenticateOptions {
  tokens: AccessTokens;
  sessions: Sessions;
  logger: Logger;
  onFailure?: (reason: string) => void;
}

export function authenticate({ tokens, sessions, logger, onFailure }: AuthenticateOptions): RequestHandler {
  const refuse = (req: Request, code: 'unauthorized' | 'invalid_token' | 'token_revoked', reason: string, userId?: string) => {
    onFailure?.(reason);
    logger.warn('security event', { event: 'auth_rejected', code, reason, ip: req.ip, userId });
    return new AppError(code);
  };

  return async (req, _res, next) => {
    const header = req.headers.authorization;
    if (header === undefined) return next(refuse(req, 'unauthorized', 'no credentials'));
    const match = BEARER.exec(header);
    if (!match) return next(refuse(req, 'unauthorized', 'not a bearer credential'));

    let claims: AccessClaims;
    try {
      claims = tokens.verify(match[1]!);
    } catch (err) {
      const reason = err instanceof AppError && err.cause instanceof Error ? err.cause.message : 'invalid';
      return next(refuse(req, 'invalid_token', reason));
    }
    // Throws service_unavailable when the store cannot answer: fail closed.
    if (!(await sessions.isActive(claims))) return next(refuse(req, 'token_revoked', 'revoked', claims.sub));

    req.auth = claims;
    const ctx = requestContext.getStore();
    if (ctx) ctx.userId = claims.sub;
    next();
  };
}
