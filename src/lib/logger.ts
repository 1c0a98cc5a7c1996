// Winston logger: JSON lines to stdout in production (PM2, Docker or the platform collect them;
// file transports race under cluster mode), readable lines in development. Every line carries the
// request id and trace ids of the request it belongs to, and passes through redaction.
import type { Writable } from 'node:stream';
import safeStringify from 'safe-stable-stringify';
import { MESSAGE } from 'triple-beam';
import winston from 'winston';
import { redactField, redactString } from './redact';
import { requestContext, traceIdsOf } from './request-context';

export type Logger = winston.Logger;

export interface LoggerOptions {
  level: string;
  /** JSON lines (production) or human-readable lines (development). */
  json: boolean;
  /** Where lines go; stdout by default. Tests pass a stream to capture output. */
  stream?: Writable;
  /** Static fields on every line (service name, pid). */
  defaultMeta?: Record<string, unknown>;
}

const RESERVED = new Set(['level', 'message', 'timestamp', 'requestId', 'traceId', 'spanId']);

/** Adds the request id and trace ids from the async context and redacts every field. */
const contextAndRedaction = winston.format((info) => {
  const ctx = requestContext.getStore();
  if (ctx && info.requestId === undefined) {
    info.requestId = ctx.requestId;
    if (ctx.userId !== undefined && info.userId === undefined) info.userId = ctx.userId;
  }
  if (ctx && info.traceId === undefined) {
    const { traceId, spanId } = traceIdsOf(ctx);
    info.traceId = traceId;
    info.spanId = spanId;
  }
  if (typeof info.message === 'string') info.message = redactString(info.message);
  for (const key of Object.keys(info)) {
    if (RESERVED.has(key)) continue;
    (info as Record<string, unknown>)[key] = redactField(key, info[key]);
  }
  return info;
});

/**
 * JSON line output. winston's format.json() uses safe-stable-stringify, which sorts keys and
 * guards against cycles on every line; the redaction format before it has already turned every
 * field into plain, acyclic data, so JSON.stringify is enough (and far cheaper on the hot path).
 */
const jsonLine = winston.format((info) => {
  let line: string;
  try {
    line = JSON.stringify(info);
  } catch {
    line = safeStringify(info); // e.g. a BigInt somebody logged
  }
  (info as Record<symbol, unknown>)[MESSAGE] = line;
  return info;
});

export function createLogger(options: LoggerOptions): Logger {
  const output = options.json
    ? jsonLine()
    : winston.format.combine(
        winston.format.colorize(),
        winston.format.printf(({ level, message, timestamp, requestId, stack, ...rest }) => {
          const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
          const id = typeof requestId === 'string' && requestId ? ` [${requestId.slice(0, 8)}]` : '';
          return `${String(timestamp)} ${level}${id}: ${String(message)}${extra}${typeof stack === 'string' && stack ? `\n${stack}` : ''}`;
        }),
      );
  return winston.createLogger({
    level: options.level,
    defaultMeta: options.defaultMeta,
    // errors() first: without it an Error logs as {"level":"error"} with no message or stack.
    format: winston.format.combine(winston.format.errors({ stack: true }), winston.format.timestamp(), contextAndRedaction(), output),
    transports: [options.stream ? new winston.transports.Stream({ stream: options.stream }) : new winston.transports.Console()],
  });
}
