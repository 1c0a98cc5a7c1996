// GET /metrics: Prometheus text format. For the process, or under PM2 cluster mode for the whole
// host (every instance, merged). Guarded like /health/detailed in production.
import type { Express, RequestHandler } from 'express';
import type { Config } from '../../config';
import type { Logger } from '../../lib/logger';
import type { Metrics } from '../../lib/metrics';
import { declareOnApp } from '../../middleware/routing';
import { opsAccess } from '../health/routes';
import type { ClusterMetrics } from './cluster';

export interface MetricsRouteOptions {
  config: Config;
  metrics: Metrics;
  logger: Logger;
  /** Present when running under PM2 cluster mode. */
  cluster?: ClusterMetrics;
}

/** Declared on the app with its full path, like the health routes (see healthRoutes). */
export function metricsRoutes(app: Express, { config, metrics, logger, cluster }: MetricsRouteOptions): void {
  const handler: RequestHandler = async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    if (cluster) {
      try {
        const host = await cluster.collect();
        if (host.instances < host.expected) logger.warn('metrics: not every instance answered', { answered: host.instances, expected: host.expected });
        res.setHeader('Content-Type', host.contentType);
        res.send(host.text);
        return;
      } catch (err) {
        // Better one process's figures, clearly logged, than no scrape at all.
        logger.error('host-wide metrics unavailable; answering for this process only', { error: err });
      }
    }
    res.setHeader('Content-Type', metrics.registry.contentType);
    res.send(await metrics.registry.metrics());
  };
  declareOnApp(app, (router) => router.get('/metrics', opsAccess(config), handler));
}
