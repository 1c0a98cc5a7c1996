// W3C trace context for log lines: the trace id and span id every log line of a request carries.
// With OpenTelemetry on, they are the request's server span's (the tracing setup installs a span
// source). Off, a valid incoming `traceparent` gives the trace id (a malformed one is ignored and a
// new trace starts, as the W3C recommendation says), and the span id is this request's own, new.
// Ids are made only when a line is written, from a pooled random buffer: a few hundred
// nanoseconds, where crypto.randomBytes per call costs microseconds.
import { randomFillSync } from 'node:crypto';

export interface TraceIds {
  /** 32 lowercase hexadecimal digits. */
  traceId: string;
  /** 16 lowercase hexadecimal digits. */
  spanId: string;
}

// version "-" trace-id "-" parent-id "-" flags, lowercase hex; a later version may append "-…".
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(-|$)/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * The trace id and parent span id of a W3C `traceparent` header, or undefined when it is absent or
 * malformed: version ff, upper-case or missing digits, an all-zero id, or a version 00 header with
 * anything after its flags. Several headers arrive joined by ", ", which is malformed too.
 */
export function parseTraceparent(header: string | string[] | undefined): TraceIds | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header);
  if (!match) return undefined;
  const [, version, traceId, spanId, rest] = match as unknown as [string, string, string, string, string];
  if (version === 'ff' || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  if (version === '00' && rest !== '') return undefined;
  return { traceId, spanId };
}

const POOL_IDS = 128;
const pool = Buffer.alloc(POOL_IDS * 24);
let next = pool.length;

/** 24 random bytes in hex from the pool: 16 for a trace id, 8 for a span id. */
function randomHex48(): string {
  if (next === pool.length) {
    randomFillSync(pool);
    next = 0;
  }
  const hex = pool.toString('hex', next, next + 24);
  next += 24;
  return hex;
}

/** A new span id in the incoming trace, or a new trace when there is none. */
export function newTraceIds(incoming?: TraceIds): TraceIds {
  const hex = randomHex48();
  return { traceId: incoming?.traceId ?? hex.slice(0, 32), spanId: hex.slice(32) };
}

let spanSource: (() => TraceIds | undefined) | undefined;

/** Installed by the tracing setup: the ids of the span active where it is called. */
export function useSpanSource(source: () => TraceIds | undefined): void {
  spanSource = source;
}

/** The active span's ids when tracing is on and a span is active; undefined otherwise (cheap). */
export function activeSpanIds(): TraceIds | undefined {
  return spanSource?.();
}
