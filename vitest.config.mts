import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    // Two cores here; each file may start an embedded PostgreSQL (several hundred MB).
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 60_000,
    passWithNoTests: false,
    globalSetup: ['test/global-setup.ts'],
    // CI reads the JSON report to fail on any skipped test (see .ci/run).
    reporters: process.env.CI ? ['default', ['json', { outputFile: process.env.CI_RESULTS_FILE ?? '.ci-results.json' }]] : ['default'],
  },
});
