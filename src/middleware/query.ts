// Query and body hardening that works on Express 5. Express 5 makes req.query a getter that
// re-parses on every access, so express-mongo-sanitize's middleware (which assigns req.query)
// answers 500 and hpp's edits are silently lost. Materialising the query once as an own data
// property fixes both, and parses once. Requests with neither a query string nor a body (most
// reads) have nothing to harden and skip all of it.
import type { Request, RequestHandler } from 'express';
import mongoSanitize from 'express-mongo-sanitize';
import hpp from 'hpp';
import type { Logger } from '../lib/logger';

function materialiseQuery(req: Request): void {
  Object.defineProperty(req, 'query', {
    value: req.query,
    writable: true,
    // Stryker disable next-line BooleanLiteral: nothing redefines or enumerates req.query; its being writable is what matters
    configurable: true,
    // Stryker disable next-line BooleanLiteral: as above
    enumerable: true,
  });
}

function hasBody(req: Request): boolean {
  const body: unknown = req.body;
  return typeof body === 'object' && Object.keys(body ?? {}).length > 0;
}

export function queryHardening(logger: Logger): RequestHandler {
  // Duplicate parameters (?sort=a&sort=b): the last one wins; the rest are kept in req.queryPolluted.
  const pollution = hpp();
  // Keys starting with $ or containing "." are removed from the body and the query (the places a
  // value can reach a query as an operator); headers and route params are never used that way.
  // Called for a non-empty body or a materialised query: both objects.
  const sanitise = (req: Request, key: 'body' | 'query') => {
    const target = req[key] as Record<string, unknown>;
    if (mongoSanitize.has(target)) {
      req[key] = mongoSanitize.sanitize(target);
      logger.warn('removed operator keys from request', { location: key });
    }
  };
  return (req, res, next) => {
    const query = req.url.includes('?');
    const body = hasBody(req);
    if (!query && !body) return next();
    if (query) materialiseQuery(req);
    pollution(req, res, () => {
      if (body) sanitise(req, 'body');
      if (query) sanitise(req, 'query');
      next();
    });
  };
}
