// Mutation testing (`npm run test:mutation`, docs/design.md): StrykerJS changes the security-relevant
// code one mutant at a time and runs the tests that cover each (vitest.mutation.config.mjs); a mutant
// that no test notices is a missing test. scripts/mutation-score.ts then holds every file to 80 %.
export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.mutation.config.mjs', pool: 'forks' },
  // Each mutant runs against only the tests that executed its code.
  coverageAnalysis: 'perTest',
  // Code that runs only while test files load (and in beforeAll, where the integration tests build
  // their apps) would otherwise need every test file for every such mutant: hours instead of
  // minutes. The tests that matter load what they check inside the test (test/helpers/fresh.ts),
  // which makes a module's top-level declarations theirs.
  ignoreStatic: true,
  mutate: [
    'src/config/*.ts',
    'src/lib/errors.ts',
    'src/middleware/error-handler.ts',
    'src/http/validation.ts',
    'src/lib/schema.ts',
    'src/modules/*/schema.ts',
    'src/lib/access-tokens.ts',
    'src/lib/sessions.ts',
    'src/lib/key-layout.ts',
    'src/middleware/rate-limit.ts',
    'src/middleware/query.ts',
    'src/middleware/body.ts',
    'src/middleware/ops-access.ts',
    'src/middleware/authenticate.ts',
    'src/middleware/security-headers.ts',
  ],
  // Generated files stay out of the sandbox; tests may read anything else (docs, nginx, scripts).
  ignorePatterns: ['dist', 'coverage', '.ci-results*.json', '.bench-short.md', 'sbom.cdx.json'],
  // Two cores, shared with Redis and PostgreSQL: two test processes at most.
  concurrency: 2,
  // A busy machine: a mutant is a timeout (counted as killed) only well past its tests' usual time.
  timeoutMS: 10_000,
  // Results are kept and reused: a run tests again only the mutants whose code or covering tests
  // changed. The file is committed; `npm run test:mutation -- --force` rebuilds it from scratch.
  incremental: true,
  incrementalFile: 'reports/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  clearTextReporter: { allowColor: false, logTests: false, reportMutants: false },
  tempDirName: '.stryker-tmp',
};
