// The tests `npm run test:mutation` (StrykerJS, stryker.config.mjs) runs against the mutants: the
// unit tests, which load what they check inside each test (test/helpers/fresh.ts), and the
// integration tests of what a request meets over HTTP: the error envelope, the body and query
// hardening, and a resource's validation (items). The other integration tests add nothing Stryker
// can credit (their apps are built in beforeAll, which it leaves out: see ignoreStatic) and cost
// seconds for every mutant that survives; CI runs them all with npm test. The system tests and the
// process-level tests are left out, so there is no global set-up here: nothing runs dist/.
import { defineConfig } from 'vitest/config';
import { BaseSequencer } from 'vitest/node';
import base from './vitest.config.mts';

const integration = ['http-contract', 'items', 'query-hardening'];

/**
 * Unit test files first, then the integration ones. A mutant runs against the tests that executed
 * its code, and stops at the first that fails: a unit test fails within a second, where an
 * integration file first builds an app over a new database.
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
    // One worker process reused across test files: each mutant is run against a few files, and
    // loading the app's modules again for every file costs more than the tests themselves.
    isolate: false,
    reporters: ['default'],
    sequence: { sequencer: UnitTestsFirst },
  },
});
