// Access log: morgan measures, winston writes. One structured line per request at `info`, a level
// that is emitted by default (morgan lines sent with logger.http() vanish at level info). Query
// strings are redacted. Health and metrics polls are answered before this middleware and are not
// logged (they would drown the log).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, RequestHandler } from 'express';
import morgan from 'morgan';
import type { Logger } from '../lib/logger';
import { redactUrl } from '../lib/redact';
import { answeredStatus } from './answered-status';

export function accessLog(logger: Logger): RequestHandler {
  return morgan<IncomingMessage, ServerResponse>((tokens, req, res) => {
    const status = answeredStatus(res);
    const request = req as Request;
    logger.info('request completed', {
      requestId: request.id,
      method: req.method,
      url: redactUrl(request.originalUrl ?? req.url ?? ''),
      status,
      durationMs: Number(tokens['response-time']?.(req, res) ?? 0),
      bytes: Number(res.getHeader('Content-Length') ?? 0),
      ip: request.ip,
      userAgent: req.headers['user-agent'],
    });
    return null; // nothing for morgan itself to write
  }) as RequestHandler;
}
