// The authenticated user's own account.
import type { RequestHandler, Response } from 'express';
import { Router } from 'express';
import { matchedData } from 'express-validator';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import { rejectOtherMethods } from '../../middleware/routing';
import type { ResponseCache } from '../../middleware/response-cache';
import { validate } from '../../middleware/validate';
import { updateMeBody } from '../auth/schema';
import { findUser, updateUserName, type User } from './repository';

function sendUser(res: Response, user: User | undefined): void {
  if (!user) throw new AppError('not_found');
  res.setHeader('Cache-Control', 'private, no-store'); // per-user: never in a shared cache
  res.json({ user });
}

const PROFILE_TTL_MS = 300_000;
// The account record changes only through this router (PATCH /me); the namespace version makes a
// change visible to the next read on every worker, and the TTL bounds anything done to the row
// outside the API.
const profileNamespace = (userId: string) => `user:${userId}`;

/** Routes under `base` (/api/v1/users), declared with full paths (see mountAt). */
export function usersRouter(base: string, db: Database, cache: ResponseCache, authenticate: RequestHandler): Router {
  const router = Router();
  // GET /me is the most frequent authenticated read: the answer is kept per user in the cache
  // store, so a hit costs no database query (authentication and revocation still run first).
  const cachedProfile = cache.middleware({
    name: 'users:me',
    ttlMs: PROFILE_TTL_MS,
    audience: 'user',
    namespaces: (req) => [profileNamespace(req.auth!.sub)],
    key: () => 'me',
  });
  router.get(`${base}/me`, authenticate, cachedProfile, async (req, res) => sendUser(res, await findUser(db, req.auth!.sub)));
  router.patch(`${base}/me`, authenticate, validate(updateMeBody), async (req, res) => {
    const { name } = matchedData(req, { locations: ['body'] }) as { name: string };
    const user = await updateUserName(db, req.auth!.sub, name);
    await cache.invalidate([profileNamespace(req.auth!.sub)]);
    sendUser(res, user);
  });
  return rejectOtherMethods(router);
}
