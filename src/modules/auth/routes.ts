// Register, login, refresh, logout, logout-all: API.md's auth table.
import type { RequestHandler, Response } from 'express';
import { Router } from 'express';
import { matchedData } from 'express-validator';
import type { AccessTokens } from '../../lib/access-tokens';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../lib/passwords';
import { rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';
import { createUser, findCredentials, findPasswordHash, updatePasswordHash, type User } from '../users/repository';
import { changePasswordBody, emptyBody, loginBody, refreshBody, registerBody } from './schema';
import { RefreshReuseError, type Sessions } from './sessions';

export interface AuthRouterOptions {
  /** /api/v1/auth: routes are declared with full paths (see mountAt). */
  base: string;
  db: Database;
  tokens: AccessTokens;
  sessions: Sessions;
  logger: Logger;
  authenticate: RequestHandler;
  limits: { login: RequestHandler; register: RequestHandler; refresh: RequestHandler; password: RequestHandler };
}

function sendTokens(res: Response, status: number, body: Record<string, unknown>): void {
  // Tokens must never be stored by a browser or proxy cache.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  res.status(status).json(body);
}

export function authRouter({ base, db, tokens, sessions, logger, authenticate, limits }: AuthRouterOptions): Router {
  const router = Router();

  const startSession = async (user: User) => {
    const { sessionId, refreshToken } = await sessions.create(user.id);
    const access = tokens.issue(user.id, sessionId);
    return { user, accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn };
  };

  router.post(`${base}/register`, limits.register, validate(registerBody), async (req, res) => {
    const input = matchedData(req, { locations: ['body'] }) as { email: string; password: string; name?: string };
    const user = await createUser(db, { email: input.email, passwordHash: await hashPassword(input.password), name: input.name });
    logger.info('security event', { event: 'user_registered', userId: user.id, ip: req.ip });
    sendTokens(res, 201, await startSession(user));
  });

  router.post(`${base}/login`, limits.login, validate(loginBody), async (req, res) => {
    const { email, password } = matchedData(req, { locations: ['body'] }) as { email: string; password: string };
    const found = await findCredentials(db, email);
    // Unknown email and wrong password: same work, same answer.
    const ok = found ? await verifyPassword(found.passwordHash, password) : await verifyAgainstDummy(password);
    if (!found || !ok) {
      logger.warn('security event', { event: 'login_failed', reason: found ? 'wrong password' : 'unknown email', userId: found?.user.id, ip: req.ip });
      throw new AppError('invalid_credentials');
    }
    logger.info('security event', { event: 'login', userId: found.user.id, ip: req.ip });
    sendTokens(res, 200, await startSession(found.user));
  });

  router.post(`${base}/refresh`, limits.refresh, validate(refreshBody), async (req, res) => {
    const { refreshToken } = matchedData(req, { locations: ['body'] }) as { refreshToken: string };
    try {
      const rotated = await sessions.rotate(refreshToken);
      const access = tokens.issue(rotated.userId, rotated.sessionId);
      sendTokens(res, 200, { accessToken: access.token, refreshToken: rotated.refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
    } catch (err) {
      if (err instanceof RefreshReuseError) {
        logger.warn('security event', { event: 'refresh_reuse', sessionId: err.sessionId, userId: err.userId, ip: req.ip, action: 'session revoked' });
      } else if (err instanceof AppError && err.code === 'invalid_grant') {
        logger.warn('security event', { event: 'refresh_rejected', ip: req.ip });
      }
      throw err;
    }
  });

  // Password change: every session of the user ends (a stolen session must not survive it) and the
  // caller continues in a fresh one.
  router.post(`${base}/password`, limits.password, authenticate, validate(changePasswordBody), async (req, res) => {
    const { currentPassword, newPassword } = matchedData(req, { locations: ['body'] }) as { currentPassword: string; newPassword: string };
    const userId = req.auth!.sub;
    const stored = await findPasswordHash(db, userId);
    if (!stored || !(await verifyPassword(stored, currentPassword))) {
      logger.warn('security event', { event: 'password_change_failed', reason: 'wrong current password', userId, ip: req.ip });
      throw new AppError('invalid_credentials');
    }
    await updatePasswordHash(db, userId, await hashPassword(newPassword));
    await sessions.revokeAll(userId);
    const { sessionId, refreshToken } = await sessions.create(userId);
    const access = tokens.issue(userId, sessionId);
    logger.warn('security event', { event: 'password_changed', userId, ip: req.ip, action: 'all sessions revoked' });
    sendTokens(res, 200, { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
  });

  router.post(`${base}/logout`, authenticate, validate(emptyBody), async (req, res) => {
    await sessions.revoke(req.auth!);
    logger.info('security event', { event: 'logout', userId: req.auth!.sub, sessionId: req.auth!.sid, ip: req.ip });
    res.status(204).end();
  });

  router.post(`${base}/logout-all`, authenticate, validate(emptyBody), async (req, res) => {
    await sessions.revokeAll(req.auth!.sub);
    logger.warn('security event', { event: 'logout_all', userId: req.auth!.sub, ip: req.ip });
    res.status(204).end();
  });

  return rejectOtherMethods(router);
}
