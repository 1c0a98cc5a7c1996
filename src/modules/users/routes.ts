// The authenticated user's own account.
import type { RequestHandler, Response } from 'express';
import { Router } from 'express';
import { matchedData } from 'express-validator';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import { rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';
import { updateMeBody } from '../auth/schema';
import { findUser, updateUserName, type User } from './repository';

function sendUser(res: Response, user: User | undefined): void {
  if (!user) throw new AppError('not_found');
  res.setHeader('Cache-Control', 'private, no-store'); // per-user: never in a shared cache
  res.json({ user });
}

/** Routes carry full paths (base + path): metrics label by template. */
export function usersRouter(base: string, db: Database, authenticate: RequestHandler): Router {
  const router = Router();
  router.get(`${base}/me`, authenticate, async (req, res) => sendUser(res, await findUser(db, req.auth!.sub)));
  router.patch(`${base}/me`, authenticate, validate(updateMeBody), async (req, res) => {
    const { name } = matchedData(req, { locations: ['body'] }) as { name: string };
    sendUser(res, await updateUserName(db, req.auth!.sub, name));
  });
  return rejectOtherMethods(router);
}
