// GET /metrics: Prometheus text format. For the process, or under PM2 cluster mode for the whole
// host (every instance, merged). Guarded like /health/detailed in production.
import { Registry } from 'prom-client';
import { defineModule } from '../../http/module';
import { hostWide } from '../../lib/cluster-metrics';
import { route } from '../../http/route';

export const metricsModule = defineModule({
  name: 'metrics',
  base: '/metrics',
  stage: 'operations',
  opsListener: true,
  tag: { name: 'Metrics', description: 'Prometheus metrics of the whole host; never rate limited.' },
  routes: ({ metrics, clusterMetrics: cluster, logger }) => [
    route({
      method: 'get',
      path: '/',
      operationId: 'metrics',
      summary: 'Prometheus metrics',
      description:
        "Text format 0.0.4: prom-client's process and Node.js metrics, http_request_duration_seconds by method, route template and status code, and the app's own counters. Under PM2 cluster mode, every worker's figures merged. In production only from OPS_ALLOWED_ADDRESSES or with the ops token.",
      access: 'ops',
      responses: { 200: { description: 'The metrics', contentType: 'text/plain; version=0.0.4; charset=utf-8', headers: ['Cache-Control'] } },
      handler: async (_input, _req, res) => {
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
            const fallback = new Registry();
            hostWide(fallback, false);
            res.setHeader('Content-Type', metrics.registry.contentType);
            res.send((await metrics.registry.metrics()) + (await fallback.metrics()));
            return;
          }
        }
        res.setHeader('Content-Type', metrics.registry.contentType);
        res.send(await metrics.registry.metrics());
      },
    }),
  ],
});
