// CORS with an exact-match allowlist. Foreign, "null" and look-alike origins get no
// Access-Control-Allow-Origin; no credentials mode (tokens travel in Authorization, not cookies).
import type { RequestHandler } from 'express';
import cors from 'cors';

export const CORS_METHODS = ['GET', 'POST', 'PATCH', 'DELETE'];
export const CORS_ALLOWED_HEADERS = ['Authorization', 'Content-Type', 'X-Request-Id'];
export const CORS_EXPOSED_HEADERS = ['X-Request-Id', 'X-Cache', 'RateLimit', 'RateLimit-Policy', 'Retry-After'];

export function corsPolicy(origins: readonly string[]): RequestHandler {
  const allowed = new Set(origins);
  return cors({
    // A function (not a list) so the answer is the echoed origin and Vary: Origin is always set.
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin) ? origin : false),
    methods: CORS_METHODS,
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    credentials: false,
    maxAge: 600,
    optionsSuccessStatus: 204,
  });
}
