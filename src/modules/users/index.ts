// The authenticated user's own account.
import type { Response } from 'express';
import { AppError } from '../../lib/errors';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';
import { findUser, updateUserName, type User } from './repository';
import { sessionList, sessionParams, updateMeBody, userResponse } from './schema';

// The module's public surface for other modules: auth creates accounts and checks and changes
// their passwords, and describes the account in its answers.
export { createUser, deleteUser, findCredentials, findPasswordHash, findUser, updatePasswordHash, type User } from './repository';
export { displayName, userSchema } from './schema';

function sendUser(res: Response, user: User | undefined): void {
  if (!user) throw new AppError('not_found');
  res.setHeader('Cache-Control', 'private, no-store'); // per-user: never in a shared cache
  res.json({ user });
}

const PROFILE_TTL_MS = 300_000;
// The account record changes only through this module (PATCH /me); the namespace version makes a
// change visible to the next read on every worker, and the TTL bounds anything done to the row
// outside the API.
const profileNamespace = (userId: string) => `user:${userId}`;

export const usersModule = defineModule({
  name: 'users',
  base: '/api/v1/users',
  tag: { name: 'Users', description: "The caller's own account." },
  routes: ({ db, cache, sessions, logger }) => [
    route({
      method: 'get',
      path: '/me',
      operationId: 'getMe',
      summary: "The caller's account",
      description:
        'Served from a per-user cache entry after authentication and the revocation check; a change made through PATCH is seen by the next read on every worker.',
      access: 'bearer',
      // The most frequent authenticated read: a hit costs no database query.
      cache: { name: 'users:me', ttlMs: PROFILE_TTL_MS, audience: 'user', namespace: ({ auth }) => profileNamespace(auth.sub), key: () => 'me' },
      responses: { 200: { description: 'The account', body: userResponse, headers: ['Cache-Control'] } },
      errors: ['not_found'],
      handler: async ({ auth }, _req, res) => sendUser(res, await findUser(db, auth.sub)),
    }),
    route({
      method: 'patch',
      path: '/me',
      operationId: 'updateMe',
      summary: "Change the caller's display name",
      description: 'The only field a user may change here; unknown fields are refused (422). The next read of /users/me on any worker sees the change.',
      access: 'bearer',
      body: updateMeBody,
      responses: { 200: { description: 'The account as changed', body: userResponse, headers: ['Cache-Control'] } },
      errors: ['not_found'],
      handler: async ({ body, auth }, _req, res) => {
        const user = await updateUserName(db, auth.sub, body.name);
        await cache.invalidate([profileNamespace(auth.sub)]);
        sendUser(res, user);
      },
    }),
    route({
      method: 'get',
      path: '/me/sessions',
      operationId: 'listSessions',
      summary: "The caller's live sessions",
      description:
        "Newest first; `current` marks the caller's own. A session is one login (or registration, or password change) and the refreshes that followed it.",
      access: 'bearer',
      responses: { 200: { description: 'The live sessions', body: sessionList, headers: ['Cache-Control'] } },
      handler: async ({ auth }, _req, res) => {
        res.setHeader('Cache-Control', 'private, no-store');
        res.json({ sessions: await sessions.list(auth.sub, auth.sid) });
      },
    }),
    route({
      method: 'delete',
      path: '/me/sessions/:id',
      operationId: 'endSession',
      summary: "End one of the caller's sessions",
      description:
        "Its refresh token and its access tokens stop working at once, on every worker. Ending the caller's own session is a logout. An unknown id, or another user's session, is 404.",
      access: 'bearer',
      params: sessionParams,
      responses: { 204: { description: 'Ended' } },
      errors: ['not_found'],
      handler: async ({ auth, params }, req, res) => {
        if (!(await sessions.revokeSession(auth.sub, params.id))) throw new AppError('not_found');
        logger.info('security event', { event: 'session_ended', userId: auth.sub, sessionId: params.id, ip: req.ip });
        res.status(204).end();
      },
    }),
  ],
});
