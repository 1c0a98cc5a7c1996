// Rules for a new password (register, password change; never login, so that passwords set under
// older rules still work), after ASVS 5 V6.2: length bounds (the schema), not among the passwords
// attackers try first, and not built from the account's own email address.
//
// The list is the common-password dictionary of @zxcvbn-ts/language-common (MIT licence): about
// 49,000 passwords ranked by how often they appear in leaked password sets, about 18,000 of them
// long enough to pass the length rule. It is read once, on first use.
import { createRequire } from 'node:module';

const load = createRequire(__filename);
let common: ReadonlySet<string> | undefined;

/** The common passwords, lower-cased. */
export function commonPasswords(): ReadonlySet<string> {
  common ??= new Set((load('@zxcvbn-ts/language-common/src/passwords.json') as string[]).map((p) => p.toLowerCase()));
  return common;
}

/** A local part shorter than this is too likely to occur by chance (`ann`, `bob`). */
const MIN_LOCAL_PART = 4;

/**
 * Why a new password is refused, or undefined when it is acceptable. Comparisons ignore case. The
 * message never contains the password.
 */
export function newPasswordProblem(password: string, email: string): string | undefined {
  const lower = password.toLowerCase();
  if (commonPasswords().has(lower)) return 'is one of the most common passwords (found in breaches): choose another';
  const address = email.trim().toLowerCase();
  const local = address.slice(0, address.lastIndexOf('@') === -1 ? address.length : address.lastIndexOf('@'));
  if (lower.includes(address) || ([...local].length >= MIN_LOCAL_PART && lower.includes(local))) {
    return 'must not contain the email address or its part before the @';
  }
  return undefined;
}
