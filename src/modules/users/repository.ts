// Users in PostgreSQL. Emails are stored lower-cased; the unique index on lower(email) makes the
// database, not a check-then-insert race, the judge of "already registered".
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../lib/db';
import { AppError } from '../../lib/errors';
import type { Infer } from '../../lib/schema';
import type { userSchema } from './schema';

/** What the API returns: the type of the response schema. */
export type User = Infer<typeof userSchema>;

interface UserRow {
  id: string;
  email: string;
  name: string | null;
  password_hash: string;
  created_at: Date | string;
}

const UNIQUE_VIOLATION = '23505';

function toUser(row: Omit<UserRow, 'password_hash'>): User {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    createdAt: (row.created_at instanceof Date ? row.created_at : new Date(row.created_at)).toISOString(),
  };
}

function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export async function createUser(db: Queryable, input: { email: string; passwordHash: string; name?: string }): Promise<User> {
  try {
    const { rows } = await db.query<UserRow>(
      `INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)
       RETURNING id, email, name, password_hash, created_at`,
      [randomUUID(), normaliseEmail(input.email), input.passwordHash, input.name ?? null],
    );
    return toUser(rows[0]!);
  } catch (err) {
    if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
      throw new AppError('conflict', { message: 'Email is already registered' });
    }
    throw err;
  }
}

/** The user and their password hash, for login only. */
export async function findCredentials(db: Queryable, email: string): Promise<{ user: User; passwordHash: string } | undefined> {
  const { rows } = await db.query<UserRow>('SELECT id, email, name, password_hash, created_at FROM users WHERE lower(email) = $1', [normaliseEmail(email)]);
  const row = rows[0];
  return row ? { user: toUser(row), passwordHash: row.password_hash } : undefined;
}

export async function findUser(db: Queryable, id: string): Promise<User | undefined> {
  const { rows } = await db.query<Omit<UserRow, 'password_hash'>>('SELECT id, email, name, created_at FROM users WHERE id = $1', [id]);
  return rows[0] ? toUser(rows[0]) : undefined;
}

/** The stored hash for a user, for re-authentication (password change). */
export async function findPasswordHash(db: Queryable, id: string): Promise<string | undefined> {
  const { rows } = await db.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [id]);
  return rows[0]?.password_hash;
}

export async function updatePasswordHash(db: Queryable, id: string, passwordHash: string): Promise<boolean> {
  return (await db.query('UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1', [id, passwordHash])).rowCount > 0;
}

export async function updateUserName(db: Queryable, id: string, name: string | null): Promise<User | undefined> {
  const { rows } = await db.query<UserRow>(
    `UPDATE users SET name = $2, updated_at = now() WHERE id = $1
     RETURNING id, email, name, password_hash, created_at`,
    [id, name],
  );
  return rows[0] ? toUser(rows[0]) : undefined;
}

/** Deletes the account; rows that reference it with ON DELETE CASCADE go with it. */
export async function deleteUser(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('DELETE FROM users WHERE id = $1', [id])).rowCount > 0;
}
