// The auth routes' fields and answers. Every field must be a string where a string is expected:
// operator objects, arrays and numbers are 422, never a login.
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../lib/passwords';
import { s } from '../../lib/schema';
import { displayName, userSchema } from '../users';

const email = s.string({
  format: 'email',
  maxLength: 254,
  description: 'Surrounding whitespace is removed; compared case-insensitively.',
  example: 'ada@example.com',
});
/** Taken exactly as typed: never trimmed. The rules beyond length are src/lib/password-policy.ts. */
const newPassword = s.string({
  minLength: PASSWORD_MIN_LENGTH,
  maxLength: PASSWORD_MAX_LENGTH,
  description:
    'Taken exactly as typed (no trimming). Refused (422) when it is one of the most common passwords found in breaches, or contains the email address or its part before the @ (when that part has 4 characters or more), ignoring case.',
  example: 'correct horse battery staple',
});
// No minimum on a presented password: one set under older rules must still be able to log in.
const presentedPassword = s.string({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH, example: 'correct horse battery staple' });

export const registerBody = s.object({ email, password: newPassword, name: s.optional(displayName) });
export const loginBody = s.object({ email, password: presentedPassword });
export const refreshBody = s.object({
  refreshToken: s.string({ minLength: 1, maxLength: 512, description: 'The refresh token last issued for this session.' }),
});
export const changePasswordBody = s.object({ currentPassword: presentedPassword, newPassword });
export const deleteAccountBody = s.object({ password: presentedPassword });
export const emptyBody = s.object({}, { description: 'No fields (an empty object, or no body at all).' });

const tokenFields = {
  accessToken: s.string({ maxLength: 4096, description: 'A JWT (typ at+jwt) for the Authorization header.' }),
  refreshToken: s.string({ maxLength: 512, description: 'Opaque; rotated on every use: presenting a used one revokes the whole session.' }),
  tokenType: s.enum(['Bearer']),
  expiresIn: s.integer({ minimum: 1, maximum: 31_536_000, description: "Seconds until the access token's exp." }),
};

export const tokenResponse = s.named('Tokens', s.object(tokenFields));
export const sessionResponse = s.named('Session', s.object({ user: userSchema, ...tokenFields }));
