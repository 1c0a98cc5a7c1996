// Password hashing: argon2id at OWASP's recommended parameters (19 MiB, 2 iterations, 1 lane)
// with @node-rs/argon2 (prebuilt, loads cleanly here; the `argon2` package's prebuilt binary does not).
import { Algorithm, hash, verify } from '@node-rs/argon2';

const OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Bounds that make sense for argon2: long passphrases welcome, megabyte "passwords" not. */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS);
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false; // a malformed stored hash is a failed login, not a 500
  }
}

let dummy: Promise<string> | undefined;

/**
 * Spends the same work as a real verification when the account does not exist, so that the
 * answer time does not tell which emails are registered.
 */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword('rampart-dummy-password-for-timing');
  await verifyPassword(await dummy, password);
  return false;
}
