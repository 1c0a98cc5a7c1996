// Register, login, refresh, password change, logout, logout-all, account deletion.
import type { Request, Response } from 'express';
import { AppError } from '../../lib/errors';
import { newPasswordProblem } from '../../lib/password-policy';
import { hashPassword, verifyAgainstDummy, verifyPassword } from '../../lib/passwords';
import { RefreshReuseError } from '../../lib/sessions';
import { defineModule } from '../../http/module';
import { route, type ResponseDeclaration } from '../../http/route';
import { clientAndEmailKey, clientKey, emailKey, submittedEmail, userOrClientKey } from '../../middleware/rate-limit';
import { removeItemsOf } from '../items';
import { createUser, deleteUser, findCredentials, findPasswordHash, findUser, updatePasswordHash, type User } from '../users';
import { changePasswordBody, deleteAccountBody, emptyBody, loginBody, refreshBody, registerBody, sessionResponse, tokenResponse } from './schema';

function sendTokens(res: Response, status: number, body: Record<string, unknown>): void {
  // Tokens must never be stored by a browser or proxy cache.
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
  res.status(status).json(body);
}

const tokens = (description: string, body = tokenResponse): ResponseDeclaration => ({ description, body, headers: ['Cache-Control', 'Pragma'] });

/** 422 for a new password the rules refuse, naming the field and never echoing the value. */
function checkNewPassword(field: string, password: string, email: string): void {
  const problem = newPasswordProblem(password, email);
  if (problem) throw new AppError('validation_failed', { details: [{ field, location: 'body', message: problem }] });
}

const userAgentOf = (req: Request): string | undefined => req.get('user-agent');

export const authModule = defineModule({
  name: 'auth',
  base: '/api/v1/auth',
  tag: {
    name: 'Auth',
    description: 'Accounts, sessions and tokens: access tokens are short-lived JWTs; refresh tokens are opaque, rotated on every use, with reuse detection.',
  },
  routes: ({ db, cache, tokens: accessTokens, sessions, logger, limiter }) => {
    const startSession = async (user: User, req: Request) => {
      const { sessionId, refreshToken } = await sessions.create(user.id, userAgentOf(req));
      const access = accessTokens.issue(user.id, sessionId);
      return { user, accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn };
    };

    /**
     * The account a password attempt is against: the submitted email (login), or the signed-in
     * user's (password change, account deletion; the token was verified before the limiters run),
     * so that all three share one count. Whether the account exists changes nothing for login.
     */
    const accountKey = async (req: Request): Promise<string> => {
      const email = submittedEmail(req);
      if (email !== undefined) return emailKey(email);
      const sub = req.earlyRevocationCheck?.claims.sub;
      const user = sub === undefined ? undefined : await findUser(db, sub);
      return user ? emailKey(user.email) : `client:${clientKey(req)}`;
    };
    // Failed password checks per account from any address: what the per-address login limit cannot
    // stop when the attacker has many addresses. Only 401s count; while limited, every attempt for
    // that account is refused, the right password included.
    const accountLimit = limiter('login-account', 'LOGIN_ACCOUNT', {
      key: accountKey,
      countFailuresOnly: true,
      failureStatus: 401,
      keyedBy: "account (the submitted email, or the signed-in user's)",
    });
    // Guessing the current password through password change or account deletion is a login
    // attempt: the login scope's limit, per user.
    const reauthLimit = limiter('reauth', 'LOGIN', { key: userOrClientKey, countFailuresOnly: true, keyedBy: 'user (client IP without a valid token)' });

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
          checkNewPassword('password', body.password, body.email);
          const user = await createUser(db, { email: body.email, passwordHash: await hashPassword(body.password), name: body.name });
          logger.info('security event', { event: 'user_registered', userId: user.id, ip: req.ip });
          sendTokens(res, 201, await startSession(user, req));
        },
      }),

      route({
        method: 'post',
        path: '/login',
        operationId: 'login',
        summary: 'Start a session with email and password',
        description: 'Unknown email and wrong password get the same answer, after the same work.',
        access: 'public',
        limit: [limiter('login', 'LOGIN', { key: clientAndEmailKey, countFailuresOnly: true, keyedBy: 'client IP and email' }), accountLimit],
        body: loginBody,
        responses: { 200: tokens('The account, with the tokens of a new session', sessionResponse) },
        errors: ['invalid_credentials'],
        handler: async ({ body: { email, password } }, req, res) => {
          const found = await findCredentials(db, email);
          // Unknown email and wrong password: same work, same answer.
          const ok = found ? await verifyPassword(found.passwordHash, password) : await verifyAgainstDummy(password);
          if (!found || !ok)
            throw new AppError('invalid_credentials', { security: { reason: found ? 'wrong password' : 'unknown email', userId: found?.user.id } });
          logger.info('security event', { event: 'login', userId: found.user.id, ip: req.ip });
          sendTokens(res, 200, await startSession(found.user, req));
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
        handler: async ({ body }, _req, res) => {
          try {
            const rotated = await sessions.rotate(body.refreshToken);
            const access = accessTokens.issue(rotated.userId, rotated.sessionId);
            sendTokens(res, 200, { accessToken: access.token, refreshToken: rotated.refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
          } catch (err) {
            if (err instanceof RefreshReuseError) {
              throw new AppError('invalid_grant', {
                cause: err,
                security: {
                  event: 'refresh_reuse',
                  reason: 'a used refresh token was presented: session revoked',
                  sessionId: err.sessionId,
                  userId: err.userId,
                },
              });
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
        limit: [reauthLimit, accountLimit],
        body: changePasswordBody,
        responses: { 200: tokens('Tokens of the fresh session the caller continues in') },
        errors: ['invalid_credentials'],
        handler: async ({ body: { currentPassword, newPassword }, auth }, req, res) => {
          const userId = auth.sub;
          const stored = await findPasswordHash(db, userId);
          if (!stored || !(await verifyPassword(stored, currentPassword))) {
            throw new AppError('invalid_credentials', { security: { event: 'password_change_failed', reason: 'wrong current password', userId } });
          }
          const account = await findUser(db, userId);
          if (!account) throw new AppError('invalid_credentials');
          checkNewPassword('newPassword', newPassword, account.email);
          await updatePasswordHash(db, userId, await hashPassword(newPassword));
          await sessions.revokeAll(userId);
          const { sessionId, refreshToken } = await sessions.create(userId, userAgentOf(req));
          const access = accessTokens.issue(userId, sessionId);
          logger.warn('security event', { event: 'password_changed', userId, ip: req.ip, action: 'all sessions revoked' });
          sendTokens(res, 200, { accessToken: access.token, refreshToken, tokenType: 'Bearer', expiresIn: access.expiresIn });
        },
      }),

      // A POST with the password rather than DELETE /users/me: a DELETE body has no defined meaning
      // and some proxies drop it, and deletion must prove the password, not only hold a token.
      route({
        method: 'post',
        path: '/delete-account',
        operationId: 'deleteAccount',
        summary: 'Delete the account, its items and every session',
        description:
          'Requires the password. Every session ends at once (its access tokens stop working on every worker), then the account and everything it owns are deleted; the email may register again. A wrong password is 401 invalid_credentials and counts as a failed login for the limits.',
        access: 'bearer',
        limit: [reauthLimit, accountLimit],
        body: deleteAccountBody,
        responses: { 204: { description: 'The account is gone' } },
        errors: ['invalid_credentials'],
        handler: async ({ body: { password }, auth }, req, res) => {
          const userId = auth.sub;
          const stored = await findPasswordHash(db, userId);
          if (!stored || !(await verifyPassword(stored, password))) {
            throw new AppError('invalid_credentials', { security: { event: 'account_deletion_failed', reason: 'wrong password', userId } });
          }
          // Sessions first: if the store cannot answer (503), nothing has been deleted yet.
          await sessions.endAll(userId);
          const invalidateItems = await db.transaction(async (tx) => {
            const after = await removeItemsOf(tx, cache, userId);
            await deleteUser(tx, userId);
            return after;
          });
          await invalidateItems();
          logger.warn('security event', { event: 'account_deleted', userId, ip: req.ip, action: 'all sessions ended, account and items deleted' });
          res.status(204).end();
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
