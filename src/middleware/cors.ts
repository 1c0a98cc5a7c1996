// CORS with an exact-match allowlist. Foreign, "null" and look-alike origins get no
// Access-Control-Allow-Origin; no credentials mode (tokens travel in Authorization, not cookies).
import type { RequestHandler } from 'express';
import cors from 'cors';

const CORS_METHODS = ['GET', 'POST', 'PATCH', 'DELETE'];
// traceparent: a browser front end may continue its own trace into the API (docs/api.md, trace context).
const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'X-Request-Id', 'traceparent'];
const CORS_EXPOSED_HEADERS = ['X-Request-Id', 'X-Cache', 'RateLimit', 'RateLimit-Policy', 'Retry-After'];

export function corsPolicy(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  const allowedOrigin = cors({
    origin: (origin, callback) => callback(null, origin),
    methods: CORS_METHODS,
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    credentials: false,
    maxAge: 600,
    optionsSuccessStatus: 204,
  });
  return (req, res, next) => {
    // Every answer depends on Origin, allowed or not: shared caches must key on it.
    res.vary('Origin');
    const origin = req.headers.origin;
    if (origin !== undefined && allowed.has(origin)) {
      allowedOrigin(req, res, next);
      return;
    }
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      // A preflight from an origin that is not allowed: answered, but grants nothing.
      res.status(204).end();
      return;
    }
    next();
  };
}
