// Access to the operations endpoints that tell more than "up" (/health/detailed, /metrics): in
// production only from OPS_ALLOWED_ADDRESSES (loopback by default) or with the ops bearer token.
import { timingSafeEqual } from 'node:crypto';
import proxyAddr from 'proxy-addr';
import type { Request, RequestHandler } from 'express';
import type { Config } from '../config';
import { AppError } from '../lib/errors';

function tokenMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function opsAccess(config: Config): RequestHandler {
  const allowed = proxyAddr.compile([...config.opsAllowedAddresses]);
  return (req: Request, _res, next) => {
    if (!config.isProduction) return next();
    const auth = req.headers.authorization;
    const match = typeof auth === 'string' ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
    if (config.opsToken && match && tokenMatches(match[1]!, config.opsToken)) return next();
    // req.ip: the client as resolved through trust proxy, not the proxy in front of the app.
    if (req.ip !== undefined && allowed(req.ip, 0)) return next();
    next(new AppError('forbidden', { security: { reason: match ? 'wrong ops token' : 'address not allowed, no ops token' } }));
  };
}
