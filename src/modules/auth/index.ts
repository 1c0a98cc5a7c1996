// Register, login, refresh, password change, logout, logout-all.
import type { Response } from 'express';
import { AppError } from '../../lib/errors';
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../lib/passwords';
import { RefreshReuseError } from '../../lib/sessions';
import { defineModule } from '../../http/module';
import { route, type ResponseDeclaration } from '../../http/route';
import { clientAndEmailKey, userOrClientKey } from '../../middleware/rate-limit';
import { createUser, findCredentials, findPasswordHash, updatePasswordHash, type User } from '../users';
import { changePasswordBody, emptyBody, loginBody, refreshBody, registerBody, sessionResponse, tokenResponse } from './schema';

function sendTokens(res: Response, status: number, body: Record<string, unknown>): void {
  // Tokens must never be stored by a browser or proxy cache.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  res.status(status).json(body);
}

const tokens = (description: string, body = tokenResponse): ResponseDeclaration => ({ description, body, headers: ['Cache-Control', 'Pragma'] });

export const authModule = defineModule({
  name: 'auth',
  base: '/api/v1/auth',
  tag: {
    name: 'Auth',
    description: 'Accounts, sessions and tokens: access tokens are short-lived JWTs; refresh tokens are opaque, rotated on every use, with reuse detection.',
  },
  routes: ({ db, tokens: accessTokens, sessions, logger, limiter }) => {
    const startSession = async (user: User) => {
      const { sessionId, refreshToken } = await sessions.create(user.id);
      const access = accessTokens.issue(user.id, sessionId);
      return { user, accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn };
    };

    return [
      route({
        method: 'post',
        path: '/register',
        operationId: 'register',
        summary: 'Create an account and start a session',
        description:
          "Emails are unique regardless of case (stored lower-cased): an address already registered is 409. The answer carries the first session's tokens.",
        access: 'public',
        limit: limiter('register', 'REGISTER'),
        body: registerBody,
        responses: { 201: tokens('The account, with the tokens of its first session', sessionResponse) },
        errors: ['conflict'],
        handler: async ({ body }, req, res) => {
          const user = await createUser(db, { email: body.email, passwordHash: await hashPassword(body.password), name: body.name });
          logger.info('security event', { event: 'user_registered', userId: user.id, ip: req.ip });
          sendTokens(res, 201, await startSession(user));
        },
      }),

      route({
        method: 'post',
        path: '/login',
        operationId: 'login',
        summary: 'Start a session with email and password',
        description: 'Unknown email and wrong password get the same answer, after the same work.',
        access: 'public',
        limit: limiter('login', 'LOGIN', { key: clientAndEmailKey, countFailuresOnly: true, keyedBy: 'client IP and email' }),
        body: loginBody,
        responses: { 200: tokens('The account, with the tokens of a new session', sessionResponse) },
        errors: ['invalid_credentials'],
        handler: async ({ body: { email, password } }, req, res) => {
          const found = await findCredentials(db, email);
          // Unknown email and wrong password: same work, same answer.
          const ok = found ? await verifyPassword(found.passwordHash, password) : await verifyAgainstDummy(password);
          if (!found || !ok) {
            logger.warn('security event', { event: 'login_failed', reason: found ? 'wrong password' : 'unknown email', userId: found?.user.id, ip: req.ip });
            throw new AppError('invalid_credentials');
          }
          logger.info('security event', { event: 'login', userId: found.user.id, ip: req.ip });
          sendTokens(res, 200, await startSession(found.user));
        },
      }),

      route({
        method: 'post',
        path: '/refresh',
        operationId: 'refresh',
        summary: 'Exchange a refresh token for new tokens',
        description:
          'The refresh token is rotated: the one presented stops working. Presenting one that was already used revokes its whole session (its access tokens too); of several concurrent refreshes with one token, exactly one succeeds.',
        access: 'public',
        limit: limiter('refresh', 'REFRESH'),
        body: refreshBody,
        responses: { 200: tokens('New tokens for the same session') },
        errors: ['invalid_grant', 'service_unavailable'],
        handler: async ({ body }, req, res) => {
          try {
            const rotated = await sessions.rotate(body.refreshToken);
            const access = accessTokens.issue(rotated.userId, rotated.sessionId);
            sendTokens(res, 200, { accessToken: access.token, refreshToken: rotated.refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
          } catch (err) {
            if (err instanceof RefreshReuseError) {
              logger.warn('security event', { event: 'refresh_reuse', sessionId: err.sessionId, userId: err.userId, ip: req.ip, action: 'session revoked' });
            } else if (err instanceof AppError && err.code === 'invalid_grant') {
              logger.warn('security event', { event: 'refresh_rejected', ip: req.ip });
            }
            throw err;
          }
        },
      }),

      // Password change: every session of the user ends (a stolen session must not survive it) and
      // the caller continues in a fresh one.
      route({
        method: 'post',
        path: '/password',
        operationId: 'changePassword',
        summary: 'Change the password; every other session ends',
        description:
          'Requires the current password. Every session of the user is revoked, the calling one included, and the caller continues in a fresh session whose tokens are in the answer. A wrong current password is 401 invalid_credentials and counts toward the limit.',
        access: 'bearer',
        // Guessing the current password through this route is a login attempt: same limit, per user.
        limit: limiter('password', 'LOGIN', { key: userOrClientKey, countFailuresOnly: true, keyedBy: 'user (client IP without a valid token)' }),
        body: changePasswordBody,
        responses: { 200: tokens('Tokens of the fresh session the caller continues in') },
        errors: ['invalid_credentials'],
        handler: async ({ body: { currentPassword, newPassword }, auth }, req, res) => {
          const userId = auth.sub;
          const stored = await findPasswordHash(db, userId);
          if (!stored || !(await verifyPassword(stored, currentPassword))) {
            logger.warn('security event', { event: 'password_change_failed', reason: 'wrong current password', userId, ip: req.ip });
            throw new AppError('invalid_credentials');
          }
          await updatePasswordHash(db, userId, await hashPassword(newPassword));
          await sessions.revokeAll(userId);
          const { sessionId, refreshToken } = await sessions.create(userId);
          const access = accessTokens.issue(userId, sessionId);
          logger.warn('security event', { event: 'password_changed', userId, ip: req.ip, action: 'all sessions revoked' });
          sendTokens(res, 200, { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
        },
      }),

      route({
        method: 'post',
        path: '/logout',
        operationId: 'logout',
        summary: 'End this session',
        description: 'This access token and its session (refresh token included) stop working at once, on every worker.',
        access: 'bearer',
        body: emptyBody,
        responses: { 204: { description: 'Logged out' } },
        handler: async ({ auth }, req, res) => {
          await sessions.revoke(auth);
          logger.info('security event', { event: 'logout', userId: auth.sub, sessionId: auth.sid, ip: req.ip });
          res.status(204).end();
        },
      }),

      route({
        method: 'post',
        path: '/logout-all',
        operationId: 'logoutAll',
        summary: 'End every session of the user',
        description: 'Every session existing at this moment is revoked; a session started right after (even in the same second) works.',
        access: 'bearer',
        body: emptyBody,
        responses: { 204: { description: 'Every session ended' } },
        handler: async ({ auth }, req, res) => {
          await sessions.revokeAll(auth.sub);
          logger.warn('security event', { event: 'logout_all', userId: auth.sub, ip: req.ip });
          res.status(204).end();
        },
      }),
    ];
  },
});
