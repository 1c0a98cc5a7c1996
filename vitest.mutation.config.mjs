// The tests `npm run test:mutation` (StrykerJS, stryker.config.mjs) runs against the mutants: the
// unit tests, and the integration tests that exercise the mutated files over HTTP. Left out: the
// system tests and the integration tests of the process, the operator scripts, the database layer,
// the stores, Docker, CI files, logging, metrics and the API viewer (they add no coverage of the
// mutated files, and several spawn processes from dist/, so there is no global set-up here).
import { defineConfig } from 'vitest/config';
import { BaseSequencer } from 'vitest/node';
import base from './vitest.config.mts';

const integration = ['auth', 'http-contract', 'items', 'query-hardening', 'rate-limits', 'security-log', 'users'];

/**
 * Unit test files first, then the integration ones. A mutant that runs while modules load (a
 * declaration, a default) is tested against every test file, stopping at the first failure: the
 * unit tests fail within a second where an integration file first builds an app and a database.
 */
class UnitTestsFirst extends BaseSequencer {
  async sort(files) {
    const rank = (spec) => (spec.moduleId.includes('/test/unit/') ? 0 : 1);
    const sorted = await super.sort(files);
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  ...base,
  test: {
    ...base.test,
    include: ['test/unit/**/*.test.ts', ...integration.map((name) => `test/integration/${name}.test.ts`)],
    // Lint and documentation-link checks: they run no mutated code.
    exclude: ['test/unit/boundaries.test.ts', 'test/unit/docs-links.test.ts'],
    globalSetup: [],
    reporters: ['default'],
    sequence: { sequencer: UnitTestsFirst },
  },
});
