// Once before all test files: compile dist/, which the process-level tests run (the server entry,
// the operator scripts, PM2). One build, so parallel test files never write dist/ at once.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export default function setup(): void {
  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
}
