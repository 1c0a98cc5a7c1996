// Request id: echo a well-formed incoming X-Request-Id (so a trace spans nginx and the app),
// otherwise generate one. It is returned on every response and carried in the async context, with
// what log lines need for their trace ids: the active span's (tracing on) or the incoming
// traceparent header, parsed only if a line is written.
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { requestContext } from '../lib/request-context';
import { activeSpanIds } from '../lib/trace-context';

const WELL_FORMED = /^[A-Za-z0-9._-]{1,128}$/;

export function requestId(): RequestHandler {
  return (req, res, next) => {
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && WELL_FORMED.test(incoming) ? incoming : randomUUID();
    req.id = id;
    res.setHeader('X-Request-Id', id);
    requestContext.run({ requestId: id, traceparent: req.headers.traceparent, trace: activeSpanIds() }, next);
  };
}
