// Diagnostic routes for tests and operators (ENABLE_DIAGNOSTIC_ROUTES=true; refused in production).
import { setTimeout as sleep } from 'node:timers/promises';
import cluster from 'node:cluster';
import { s } from '../../lib/schema';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';

const whoami = s.object({
  ip: s.nullable(s.string({ maxLength: 64, description: 'The client address as resolved through TRUST_PROXY.' })),
  pid: s.integer({ minimum: 1, maximum: 4_194_304 }),
  workerId: s.nullable(s.string({ maxLength: 20, description: "PM2's NODE_APP_INSTANCE or the cluster worker id." })),
});

export const diagModule = defineModule({
  name: 'diag',
  base: '/api/v1/_diag',
  tag: { name: 'Diagnostics', description: 'Only with ENABLE_DIAGNOSTIC_ROUTES=true, which production refuses: for tests and troubleshooting.' },
  enabled: (config) => config.enableDiagnosticRoutes,
  routes: () => [
    route({
      method: 'get',
      path: '/slow',
      operationId: 'diagSlow',
      summary: 'Wait, then answer',
      description: 'Holds the request for `ms` milliseconds (at most 30 s): for testing timeouts, draining and shutdown.',
      access: 'public',
      query: { ms: s.integer({ minimum: 0, maximum: 30_000, description: 'Milliseconds to wait.' }) },
      responses: { 200: { description: 'Waited', body: s.object({ sleptMs: s.integer({ minimum: 0, maximum: 30_000 }) }) } },
      handler: async ({ query: { ms } }, _req, res) => {
        await sleep(ms);
        res.json({ sleptMs: ms });
      },
    }),
    route({
      method: 'get',
      path: '/boom',
      operationId: 'diagBoom',
      summary: 'Throw: the error handler must answer 500 internal_error, revealing nothing',
      description:
        'Throws an error whose message holds a file path and a password: the answer must be the generic 500 envelope, and the log must not hold the password.',
      access: 'public',
      responses: {},
      handler: () => {
        throw new Error('diagnostic failure at /srv/app/secret/path.ts with password=hunter2');
      },
    }),
    route({
      method: 'get',
      path: '/whoami',
      operationId: 'diagWhoami',
      summary: 'The client address as the app sees it, and which process answered',
      description: 'For checking TRUST_PROXY behind a proxy and the spread of requests over PM2 workers.',
      access: 'public',
      responses: { 200: { description: 'Who answered whom', body: whoami } },
      handler: (_input, req, res) => {
        const worker = process.env.NODE_APP_INSTANCE ?? cluster.worker?.id;
        res.json({ ip: req.ip ?? null, pid: process.pid, workerId: worker === undefined ? null : String(worker) });
      },
    }),
  ],
});
