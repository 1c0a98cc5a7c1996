// Query hardening that works on Express 5. Express 5 makes req.query a getter that re-parses on
// every access, so express-mongo-sanitize (which assigns req.query) answers 500 and hpp's edits are
// silently lost. Materialising the query once as an own data property fixes both, and parses once.
import type { RequestHandler } from 'express';
import mongoSanitize from 'express-mongo-sanitize';
import hpp from 'hpp';
import type { Logger } from '../lib/logger';

export function materialiseQuery(): RequestHandler {
  return (req, _res, next) => {
    Object.defineProperty(req, 'query', { value: req.query, writable: true, configurable: true, enumerable: true });
    next();
  };
}

export function queryHardening(logger: Logger): RequestHandler[] {
  return [
    materialiseQuery(),
    // Duplicate parameters (?sort=a&sort=b): the last one wins; the rest are kept in req.queryPolluted.
    hpp(),
    // Keys starting with $ or containing "." are removed from body, query, params and headers.
    mongoSanitize({
      onSanitize: ({ key }) => logger.warn('removed operator keys from request', { location: key }),
    }),
  ];
}
