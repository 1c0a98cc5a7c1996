// Per-request context carried through async calls, so every log line of a request can name it
// without the request object being passed around.
import { AsyncLocalStorage } from 'node:async_hooks';
import { newTraceIds, parseTraceparent, type TraceIds } from './trace-context';

export interface RequestContext {
  requestId: string;
  userId?: string;
  /** The incoming W3C traceparent header, read when the first log line needs trace ids. */
  traceparent?: string | string[];
  /** The request's trace ids: the active span's when tracing is on, else made on first use. */
  trace?: TraceIds;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** The request's trace and span ids, made once per request and only when asked for. */
export function traceIdsOf(ctx: RequestContext): TraceIds {
  return (ctx.trace ??= newTraceIds(parseTraceparent(ctx.traceparent)));
}
