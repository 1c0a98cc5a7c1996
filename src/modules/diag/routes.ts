// Diagnostic routes for tests and operators (ENABLE_DIAGNOSTIC_ROUTES=true; refused in production).
import { setTimeout as sleep } from 'node:timers/promises';
import cluster from 'node:cluster';
import { Router } from 'express';
import { query, matchedData } from 'express-validator';
import { rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';

const slowQuery = [query('ms').isInt({ min: 0, max: 30_000 }).withMessage('must be an integer from 0 to 30000').toInt()];

/** Routes under `base` (/api/v1/_diag), declared with full paths (see mountAt). */
export function diagRouter(base: string): Router {
  const router = Router();
  router.get(`${base}/slow`, validate(slowQuery), async (req, res) => {
    const { ms } = matchedData(req) as { ms: number };
    await sleep(ms);
    res.json({ sleptMs: ms });
  });
  router.get(`${base}/boom`, () => {
    throw new Error('diagnostic failure at /srv/app/secret/path.ts with password=hunter2');
  });
  router.get(`${base}/whoami`, (req, res) => {
    res.json({ ip: req.ip, pid: process.pid, workerId: process.env.NODE_APP_INSTANCE ?? cluster.worker?.id ?? null });
  });
  return rejectOtherMethods(router);
}
