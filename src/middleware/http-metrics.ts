// Request metrics: a duration histogram labelled by method, route template and status code (the
// gauge of requests in flight is read from admission control's count). The label is the matched route's template (/api/v1/items/:id: routes
// are declared with full paths, see mountAt), never the raw path: ids in labels would create a
// series per item. Unmatched paths share one label.
import type { RequestHandler } from 'express';
import onFinished from 'on-finished';
import type { Metrics } from '../lib/metrics';
import { answeredStatus } from './answered-status';

const UNMATCHED_ROUTE = '(unmatched)';

export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const stop = metrics.httpDuration.startTimer();
    onFinished(res, () => {
      const path = (req.route as { path?: unknown } | undefined)?.path;
      stop({ method: req.method, route: typeof path === 'string' ? path : UNMATCHED_ROUTE, status_code: String(answeredStatus(res)) });
    });
    next();
  };
}
