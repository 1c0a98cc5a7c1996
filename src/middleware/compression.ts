// gzip for responses of 1 kB or more. Streamed responses (Server-Sent Events) are never buffered
// by the compressor, and a response can opt out with Cache-Control: no-transform.
//
// The compressor is set up lazily. The compression package wraps write, end and writeHead of every
// response it is given and decides at the headers whether to compress; most API answers are small
// JSON bodies of known length, for which it then does nothing. Here a response whose client accepts
// gzip gets three light stand-ins instead (shared functions, no closures): the first call settles
// it. A body known to be under the threshold goes out as it is, with the Vary the compressor would
// have added; anything else (a large or unknown-length body, a stream, an explicit writeHead) gets
// the response's own methods back, the compressor installed over them, and goes through it exactly
// as before. The stand-ins sit on the response itself, over whatever it had (another wrapper made
// before this middleware included), never on the shared prototype, which such wrappers bypass.
import { ServerResponse } from 'node:http';
import type { Request, Response, RequestHandler } from 'express';
import compression from 'compression';

const THRESHOLD = 1024;

function shouldCompress(req: Request, res: Response): boolean {
  const type = res.getHeader('Content-Type');
  if (typeof type === 'string' && type.startsWith('text/event-stream')) return false;
  return compression.filter(req, res);
}

/** A response's own methods while the stand-ins are on, and how to install the compressor. */
interface Pending {
  write: Method;
  end: Method;
  writeHead: Method;
  install: () => void;
}
const PENDING = Symbol('compressor not installed yet');
type Lazy = Response & { [PENDING]?: Pending };
type Method = (this: ServerResponse, ...args: unknown[]) => unknown;

/** The body's size when end() is called with all of it, before any header went out; else undefined. */
function knownLength(res: Lazy, chunk: unknown, encoding: unknown): number | undefined {
  const declared = res.getHeader('Content-Length');
  if (declared !== undefined) return Number(declared);
  if (chunk === undefined || typeof chunk === 'function') return 0;
  if (typeof chunk === 'string') return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (Buffer.isBuffer(chunk)) return chunk.length;
  return undefined;
}

/** What the compressor would have done to a body under its threshold: only the Vary header. */
function varyLikeTheCompressor(res: Lazy): void {
  const cacheControl = res.getHeader('Cache-Control');
  const noTransform = typeof cacheControl === 'string' && /(?:^|,)\s*?no-transform\s*?(?:,|$)/.test(cacheControl);
  if (!noTransform && shouldCompress(res.req, res)) res.vary('Accept-Encoding');
}

/** A method of the response as it is now (own or inherited), to be called later with the response as `this`. */
const method = (res: Response, name: string): Method | undefined => Reflect.get(res, name) as Method | undefined;

/** Puts the response's own methods back; returns what was pending, if anything. */
function settle(res: Lazy): Pending | undefined {
  const pending = res[PENDING];
  if (!pending) return undefined;
  res[PENDING] = undefined;
  Object.assign(res, { write: pending.write, end: pending.end, writeHead: pending.writeHead });
  return pending;
}

/** Settles the response with the compressor installed, then makes the call through it. */
function throughCompressor(res: Lazy, method: 'write' | 'end' | 'writeHead', args: unknown[]): unknown {
  settle(res)?.install();
  return (res[method] as Method).apply(res, args);
}

function lazyWrite(this: Lazy, ...args: unknown[]): unknown {
  return throughCompressor(this, 'write', args);
}

function lazyWriteHead(this: Lazy, ...args: unknown[]): unknown {
  return throughCompressor(this, 'writeHead', args);
}

function lazyEnd(this: Lazy, ...args: unknown[]): unknown {
  if (!this.headersSent) {
    const length = knownLength(this, args[0], args[1]);
    if (length !== undefined && length < THRESHOLD) {
      const pending = settle(this)!;
      varyLikeTheCompressor(this);
      return pending.end.apply(this, args);
    }
  }
  return throughCompressor(this, 'end', args);
}

/** The compressor's own addition (for streams): sends what it holds; before it is installed, nothing to send. */
function lazyFlush(this: Lazy): void {
  settle(this)?.install();
  const flush = method(this, 'flush');
  if (flush !== lazyFlush) flush?.call(this);
}

export function responseCompression(): RequestHandler {
  const compress = compression({ threshold: THRESHOLD, filter: shouldCompress });
  const noop = () => undefined;
  return (req, res, next) => {
    // Clients that do not accept gzip never get the compressor; the answer still says it depends
    // on Accept-Encoding, as it would with the compressor.
    const accepted = req.headers['accept-encoding'];
    if (accepted === undefined || !/\bgzip\b|\*/.test(accepted)) {
      res.vary('Accept-Encoding');
      return next();
    }
    const lazy = res as Lazy;
    lazy[PENDING] = {
      write: method(res, 'write')!,
      end: method(res, 'end')!,
      writeHead: method(res, 'writeHead')!,
      install: () => compress(req, res, noop),
    };
    Object.assign(res, { write: lazyWrite, end: lazyEnd, writeHead: lazyWriteHead, flush: lazyFlush });
    next();
  };
}
