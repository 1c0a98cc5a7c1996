// The account as the API shows it, and what its owner may change.
import { s } from '../../lib/schema';

/** Surrounding whitespace removed; 1 to 100 characters remain. */
export const displayName = s.string({ minLength: 1, maxLength: 100, trim: true, description: 'Surrounding whitespace is removed.', example: 'Ada Lovelace' });

export const userSchema = s.named(
  'User',
  s.object({
    id: s.string({ format: 'uuid', maxLength: 36, example: '0b8e2f1a-6c3d-4e7f-8a9b-1c2d3e4f5a6b' }),
    email: s.string({ format: 'email', maxLength: 254, description: 'Stored lower-cased; unique regardless of case.', example: 'ada@example.com' }),
    name: s.nullable(s.string({ maxLength: 100, example: 'Ada Lovelace' })),
    createdAt: s.string({ format: 'date-time', maxLength: 40 }),
  }),
);

export const userResponse = s.object({ user: userSchema });

export const updateMeBody = s.object({ name: displayName });

const timestamp = s.string({ format: 'date-time', maxLength: 40 });
export const sessionParams = { id: s.string({ format: 'uuid', minLength: 36, maxLength: 36, example: '3f6c1e2a-9b4d-4c8e-a1f2-7d3e5b6a9c0d' }) };
export const sessionList = s.object({
  sessions: s.array(
    s.named(
      'SessionInfo',
      s.object({
        id: s.string({ format: 'uuid', maxLength: 36 }),
        createdAt: timestamp,
        lastUsedAt: s.string({ format: 'date-time', maxLength: 40, description: 'The last login or refresh of this session (not every request).' }),
        expiresAt: s.string({ format: 'date-time', maxLength: 40, description: 'When it ends at the latest (the absolute session cap).' }),
        userAgent: s.nullable(s.string({ maxLength: 256, description: 'The User-Agent that started it, cut to 256 characters.' })),
        current: s.boolean({ description: "True for the caller's own session." }),
      }),
    ),
    // Sessions live at most JWT_SESSION_MAX_AGE; a user has as many as logins in that time.
    { maxItems: 10_000 },
  ),
});
