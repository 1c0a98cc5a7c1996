// Operations endpoints, answered before the heavy middleware and never rate limited.
//   /health          load balancers: is this process taking traffic? touches no dependency
//   /health/live     liveness: alive until exit
//   /health/ready    readiness: dependencies reachable and not draining
//   /health/detailed per-component report (application/health+json)
import { timingSafeEqual } from 'node:crypto';
import proxyAddr from 'proxy-addr';
import type { Express, Request, RequestHandler, Response } from 'express';
import type { Config } from '../../config';
import { AppError } from '../../lib/errors';
import type { Lifecycle } from '../../lib/lifecycle';
import { declareOnApp } from '../../middleware/routing';
import type { Probes } from './probes';
import { healthReport, startEventLoopMonitor } from './report';

export interface HealthOptions {
  config: Config;
  lifecycle: Lifecycle;
  probes: Probes;
  version: string;
}

function noStore(res: Response): void {
  res.setHeader('Cache-Control', 'no-store');
}

function tokenMatches(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** In production: only OPS_ALLOWED_ADDRESSES (loopback by default) or the ops bearer token. */
export function opsAccess(config: Config): RequestHandler {
  const allowed = proxyAddr.compile([...config.opsAllowedAddresses]);
  return (req: Request, _res, next) => {
    if (!config.isProduction) return next();
    const auth = req.headers.authorization;
    const match = typeof auth === 'string' ? /^Bearer\s+(\S+)$/i.exec(auth) : null;
    if (config.opsToken && match && tokenMatches(match[1]!, config.opsToken)) return next();
    // req.ip: the client as resolved through trust proxy, not the proxy in front of the app.
    if (req.ip !== undefined && allowed(req.ip, 0)) return next();
    next(new AppError('forbidden'));
  };
}

/**
 * Declared on the app itself, with full paths, not as a router mounted at /health: load balancers
 * poll these several times a second per instance, and a mounted router costs each poll a rewrite
 * and re-parse of the URL and a second router pass, while a route the request does not match costs
 * the other requests one failed regular expression test.
 */
export function healthRoutes(app: Express, { config, lifecycle, probes, version }: HealthOptions): void {
  startEventLoopMonitor();
  declareOnApp(app, (router) => {
    router.get('/health', (_req, res) => {
      noStore(res);
      res.status(lifecycle.draining ? 503 : 200).json({ status: lifecycle.draining ? 'fail' : 'pass' });
    });

    router.get('/health/live', (_req, res) => {
      noStore(res);
      res.json({ status: 'pass' });
    });

    router.get('/health/ready', async (_req, res) => {
      noStore(res);
      if (lifecycle.draining) {
        res.status(503).json({ status: 'fail', reason: 'draining' });
        return;
      }
      const [redis, database] = await Promise.all([probes.redis(), probes.database()]);
      const ok = redis.ok && database.ok;
      res.status(ok ? 200 : 503).json({ status: ok ? 'pass' : 'fail', checks: { redis: redis.ok, database: database.ok } });
    });

    router.get('/health/detailed', opsAccess(config), async (_req, res) => {
      noStore(res);
      const [redis, database] = await Promise.all([probes.redis(), probes.database()]);
      const report = healthReport({
        redis,
        database,
        draining: lifecycle.draining,
        uptimeSeconds: Math.round((Date.now() - lifecycle.startedAt) / 1000),
        version,
      });
      // warn is still serving: 200; fail is 503.
      res.status(report.status === 'fail' ? 503 : 200).type('application/health+json').send(JSON.stringify(report.body));
    });
  });
}
