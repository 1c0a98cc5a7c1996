// Operations endpoints, answered before the heavy middleware and never rate limited.
//   /health          load balancers: is this process taking traffic? touches no dependency
//   /health/live     liveness: alive until exit
//   /health/ready    the dependency view: Redis and the database reachable, not draining
//   /health/detailed per-component report (application/health+json), guarded in production
import type { Response } from 'express';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';
import { healthReport as buildReport, startEventLoopMonitor } from './report';
import { healthReport, healthStatus, readiness } from './schema';

function noStore(res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
}

const HEALTH_JSON = 'application/health+json';

export const healthModule = defineModule({
  name: 'health',
  base: '/health',
  stage: 'operations',
  opsListener: true,
  tag: { name: 'Health', description: 'For load balancers, orchestrators and operators; never rate limited.' },
  routes: ({ lifecycle, probes, version }) => {
    startEventLoopMonitor();
    return [
      route({
        method: 'get',
        path: '/',
        operationId: 'health',
        summary: 'Is this process taking traffic?',
        description:
          'For load balancers and readiness probes. Touches no dependency: a Redis or database outage never takes every instance out of rotation. 503 once shutdown has begun.',
        access: 'public',
        responses: {
          200: { description: 'Taking traffic', body: healthStatus, headers: ['Cache-Control'] },
          503: { description: 'Shutting down: send traffic elsewhere', body: healthStatus, headers: ['Cache-Control'] },
        },
        handler: (_input, _req, res) => {
          noStore(res);
          res.status(lifecycle.draining ? 503 : 200).json({ status: lifecycle.draining ? 'fail' : 'pass' });
        },
      }),

      route({
        method: 'get',
        path: '/live',
        operationId: 'liveness',
        summary: 'Is the process alive?',
        description: 'For liveness and start-up probes: 200 until the process exits.',
        access: 'public',
        responses: { 200: { description: 'Alive', body: healthStatus, headers: ['Cache-Control'] } },
        handler: (_input, _req, res) => {
          noStore(res);
          res.json({ status: 'pass' });
        },
      }),

      route({
        method: 'get',
        path: '/ready',
        operationId: 'readiness',
        summary: 'Are Redis and the database reachable?',
        description:
          "The dependency view, for operators and PM2's readiness; not for an orchestrator's readiness probe (a Redis blip would take every instance out at once, while reads are meant to fail open). Probe results are reused for 1 s.",
        access: 'public',
        responses: {
          200: { description: 'Both reachable', body: readiness, headers: ['Cache-Control'] },
          503: { description: 'A dependency is unreachable, or the process is draining', body: readiness, headers: ['Cache-Control'] },
        },
        handler: async (_input, _req, res) => {
          noStore(res);
          if (lifecycle.draining) {
            res.status(503).json({ status: 'fail', reason: 'draining' });
            return;
          }
          const [redis, database] = await Promise.all([probes.redis(), probes.database()]);
          const ok = redis.ok && database.ok;
          res.status(ok ? 200 : 503).json({ status: ok ? 'pass' : 'fail', checks: { redis: redis.ok, database: database.ok } });
        },
      }),

      route({
        method: 'get',
        path: '/detailed',
        operationId: 'healthReport',
        summary: 'Per-component health report',
        description:
          'Redis and database round trips (warn above 50 and 100 ms), event-loop lag, memory, uptime, version. In production only from OPS_ALLOWED_ADDRESSES or with the ops token.',
        access: 'ops',
        responses: {
          200: { description: 'pass or warn: serving', body: healthReport, contentType: HEALTH_JSON, headers: ['Cache-Control'] },
          503: {
            description: 'fail: a dependency is down or the process is draining',
            body: healthReport,
            contentType: HEALTH_JSON,
            headers: ['Cache-Control'],
          },
        },
        handler: async (_input, _req, res) => {
          noStore(res);
          const [redis, database] = await Promise.all([probes.redis(), probes.database()]);
          const report = buildReport({
            redis,
            database,
            draining: lifecycle.draining,
            uptimeSeconds: Math.round((Date.now() - lifecycle.startedAt) / 1000),
            version,
          });
          // warn is still serving: 200; fail is 503.
          res
            .status(report.status === 'fail' ? 503 : 200)
            .type(HEALTH_JSON)
            .send(JSON.stringify(report.body));
        },
      }),
    ];
  },
});
