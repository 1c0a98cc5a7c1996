// JSON bodies only: 415 for any other declared type, 413 over the limit (counted after inflating
// gzip/deflate bodies), 400 invalid_json for broken JSON or a bare scalar (strict mode).
import type { RequestHandler } from 'express';
import express from 'express';
import { AppError } from '../lib/errors';

// Keys that reach Object.prototype through careless merging later on: dropped while parsing.
const POLLUTING_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
function dropPollutingKeys(key: string, value: unknown): unknown {
  return POLLUTING_KEYS.has(key) ? undefined : value;
}

function hasBody(req: Parameters<RequestHandler>[0]): boolean {
  const length = req.headers['content-length'];
  if (req.headers['transfer-encoding'] !== undefined) return true;
  return length !== undefined && length !== '0';
}

/**
 * Request bodies: none (most API requests, reads) goes straight on; one that is present must be
 * declared as JSON (else 415) and is then parsed with the limits above.
 */
export function jsonBody(limitBytes: number): RequestHandler {
  const parse = express.json({
    limit: limitBytes,
    strict: true,
    // Stryker disable next-line StringLiteral: body-parser's default type is application/json; the type was checked just before anyway
    type: 'application/json',
    inflate: true,
    reviver: dropPollutingKeys,
  });
  return (req, res, next) => {
    if (!hasBody(req)) return next();
    if (!req.is('application/json')) return next(new AppError('unsupported_media_type'));
    parse(req, res, next);
  };
}
