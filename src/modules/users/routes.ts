// The authenticated user's own account.
import type { RequestHandler, Response, Router } from 'express';
import { matchedData } from 'express-validator';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import { moduleRouter, rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';
import { updateMeBody } from '../auth/schema';
import { findUser, updateUserName, type User } from './repository';

function sendUser(res: Response, user: User | undefined): void {
  if (!user) throw new AppError('not_found');
  res.setHeader('Cache-Control', 'private, no-store'); // per-user: never in a shared cache
  res.json({ user });
}

/** Mounted at /api/v1/users. */
export function usersRouter(db: Database, authenticate: RequestHandler): Router {
  const router = moduleRouter();
  router.get('/me', authenticate, async (req, res) => sendUser(res, await findUser(db, req.auth!.sub)));
  router.patch('/me', authenticate, validate(updateMeBody), async (req, res) => {
    const { name } = matchedData(req, { locations: ['body'] }) as { name: string };
    sendUser(res, await updateUserName(db, req.auth!.sub, name));
  });
  return rejectOtherMethods(router);
}
