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
