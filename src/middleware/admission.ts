// Admission control: when the process is overloaded, a request is refused before any work is done
// for it (no access log line, no metrics by route, no body parsing, no store or database call) with
// 503, Retry-After and Connection: close, so the client, nginx or the PM2 primary can try another
// process while this one catches up. The operations endpoints are answered before this middleware
// and are never refused: a load balancer or a liveness probe must still see the truth.
import type { RequestHandler } from 'express';
import onFinished from 'on-finished';
import { AppError } from '../lib/errors';
import type { LoadMonitor, ShedReason } from '../lib/load-monitor';
import type { Logger } from '../lib/logger';
import { sendError } from './error-handler';

/** How long a refused client should wait: a second is long enough for one process to catch up. */
const RETRY_AFTER_SECONDS = 1;
/** At most one log line about shedding per this interval. */
const LOG_INTERVAL_MS = 1000;

export interface AdmissionOptions {
  load: LoadMonitor;
  logger: Logger;
  onShed: (reason: ShedReason) => void;
  /** For tests of the log bound. */
  now?: () => number;
}

export function admission({ load, logger, onShed, now = Date.now }: AdmissionOptions): RequestHandler {
  let loggedAt = -Infinity;
  let unlogged = 0;
  const release = () => {
    load.inFlight -= 1;
  };
  return (req, res, next) => {
    const reason = load.overloaded();
    if (reason === undefined) {
      load.inFlight += 1;
      onFinished(res, release);
      next();
      return;
    }
    onShed(reason);
    unlogged += 1;
    const at = now();
    if (at - loggedAt >= LOG_INTERVAL_MS) {
      logger.warn('overloaded: refusing requests', {
        reason,
        refused: unlogged,
        inFlight: load.inFlight,
        eventLoopDelayMs: Math.round(load.eventLoopDelayMs()),
      });
      loggedAt = at;
      unlogged = 0;
    }
    res.setHeader('Connection', 'close');
    sendError(
      req,
      res,
      new AppError('service_unavailable', { message: 'Server is overloaded; retry shortly', headers: { 'Retry-After': String(RETRY_AFTER_SECONDS) } }),
    );
  };
}
