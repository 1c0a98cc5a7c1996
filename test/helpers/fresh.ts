// Source modules loaded anew inside the calling test.
import { vi } from 'vitest';

/**
 * What `load` imports, evaluated afresh inside the calling test, so that a module's top-level
 * declarations (a default, a pattern, a table of codes) run as part of that test. Mutation testing
 * (stryker.config.mjs, `ignoreStatic`) tests a mutant only against the tests it runs in: code that
 * runs only while test files load would otherwise escape it. Take every module the test compares
 * from one call (an AppError class from an earlier load is another class).
 */
export async function fresh<T>(load: () => Promise<T>): Promise<T> {
  vi.resetModules();
  return load();
}
