// Once before all test files: compile dist/, which the process-level tests run (the server entry,
// the operator scripts, PM2). One build, so parallel test files never write dist/ at once.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function setup(): void {
  // A test that runs other test files in a child vitest (test/integration/pgbouncer.test.ts) sets
  // this: dist/ is already built, and rebuilding it would race the tests that run it.
  if (process.env.RAMPART_TEST_NO_BUILD === '1') return;
  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
}
