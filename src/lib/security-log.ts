// Security events: one structured log line for every refused request (401, 403, 429), with who,
// from where, on which route and why (ASVS 5 V16.3), under one message, "security event", that log
// pipelines can select on. Bounded: a flood of refusals (a brute force, a scan) must not flood the
// log or slow every request with writes; past the budget, events are counted and the count is
// logged once the next second starts.
import type { Logger } from './logger';

export interface SecurityEvent {
  event: string;
  status: number;
  code: string;
  reason?: string;
  userId?: string;
  sessionId?: string;
  ip?: string;
  method: string;
  /** The route's template (`/api/v1/items/:id`), never a raw path with ids in it. */
  route: string;
  requestId?: string;
}

export type SecurityLog = (event: SecurityEvent) => void;

/** Events per second each process writes before it starts counting instead. */
const SECURITY_EVENTS_PER_SECOND = 50;

export function securityLog(logger: Logger, perSecond = SECURITY_EVENTS_PER_SECOND, now: () => number = Date.now): SecurityLog {
  let window = 0;
  let written = 0;
  let suppressed = 0;
  return (event) => {
    const second = Math.floor(now() / 1000);
    if (second !== window) {
      if (suppressed > 0) logger.warn('security events suppressed', { suppressed, perSecond });
      window = second;
      written = 0;
      suppressed = 0;
    }
    if (written >= perSecond) {
      suppressed++;
      return;
    }
    written++;
    logger.warn('security event', { ...event });
  };
}
