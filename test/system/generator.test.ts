// `npm run new:module` for real: generate a resource into a copy of the project, then hold the copy
// to what CI holds the project to (type check, lint, format, knip) and run the generated tests,
// with the API description checks, against the services this run has (the real Redis and
// PostgreSQL in CI).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../..');
const NAME = 'field-notes';
// Not copied: installed or produced by tools (node_modules is linked instead).
const LEFT_OUT = new Set(['node_modules', '.git', 'dist', 'coverage', 'reports', '.stryker-tmp']);

let copy: string;
let generated: SpawnSyncReturns<string>;

/** The environment of this run, minus what the outer vitest set for its own workers. */
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('VITEST') || key === 'CI_RESULTS_FILE' || key === 'NODE_OPTIONS') delete env[key];
  return env;
}

function run(command: string, args: string[], timeoutMs = 240_000, env: NodeJS.ProcessEnv = {}): SpawnSyncReturns<string> {
  return spawnSync(command, args, { cwd: copy, env: { ...childEnv(), ...env }, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
}

const output = (r: SpawnSyncReturns<string>) => `exit ${r.status}${r.error ? ` (${r.error.message})` : ''}\n${r.stdout}\n${r.stderr}`;
const read = (file: string) => readFileSync(path.join(copy, file), 'utf8');

beforeAll(() => {
  copy = mkdtempSync(path.join(os.tmpdir(), 'rampart-generator-'));
  cpSync(ROOT, copy, { recursive: true, filter: (src) => !LEFT_OUT.has(path.basename(src)) || path.dirname(src) !== ROOT });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  generated = run('npm', ['run', '--silent', 'new:module', '--', NAME]);
}, 180_000);

afterAll(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

describe('npm run new:module', () => {
  it('writes the migration, the module, its test, adds it to the list and to the committed document', () => {
    expect(generated.status, output(generated)).toBe(0);
    const migrations = readdirSync(path.join(copy, 'migrations')).sort();
    const migration = migrations[migrations.length - 1]!;
    expect(migration).toMatch(/^\d{4}_field_notes\.sql$/);
    expect(Number(migration.slice(0, 4))).toBe(migrations.length);
    expect(read(`migrations/${migration}`)).toContain('CREATE TABLE field_notes (');
    for (const file of ['schema.ts', 'repository.ts', 'index.ts']) expect(existsSync(path.join(copy, 'src/modules', NAME, file)), file).toBe(true);
    expect(existsSync(path.join(copy, `test/integration/${NAME}.test.ts`))).toBe(true);
    expect(generated.stdout).toContain(`created  migrations/${migration}`);
    expect(generated.stdout).toContain('changed  src/modules/index.ts');

    const list = read('src/modules/index.ts');
    expect(list).toContain(`import { fieldNotesModule } from './field-notes';`);
    expect(list).toMatch(/itemsModule,\s*fieldNotesModule,\s*diagModule,?\s*\]/);

    const document = JSON.parse(read('docs/openapi.json')) as { paths: Record<string, Record<string, { operationId: string }>> };
    const operations = ['/api/v1/field-notes', '/api/v1/field-notes/{id}'].flatMap((p) => Object.values(document.paths[p] ?? {}).map((o) => o.operationId));
    expect(operations.sort()).toEqual(['createFieldNote', 'deleteFieldNote', 'getFieldNote', 'listFieldNotes', 'updateFieldNote']);
  });

  it('refuses to overwrite, and a bad name, changing nothing', () => {
    const before = read('src/modules/index.ts');
    const again = run('npm', ['run', '--silent', 'new:module', '--', NAME]);
    expect(again.status).toBe(1);
    expect(again.stderr).toContain(`src/modules/${NAME} already exists`);
    const taken = run('npm', ['run', '--silent', 'new:module', '--', 'items']);
    expect(taken.status).toBe(1);
    expect(taken.stderr).toContain('src/modules/items already exists');
    const bad = run('npm', ['run', '--silent', 'new:module', '--', 'Bad_Name']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain("'Bad_Name' is not a module name");
    expect(bad.stderr).toContain('Usage: npm run new:module');
    expect(read('src/modules/index.ts')).toBe(before);
    expect(existsSync(path.join(copy, 'src/modules/bad_name'))).toBe(false);
  });

  it('passes the type check, lint, the format check and knip as generated', () => {
    for (const script of ['typecheck', 'lint', 'format:check', 'knip']) {
      const r = run('npm', ['run', '--silent', script]);
      expect(r.status, `${script}: ${output(r)}`).toBe(0);
    }
  }, 600_000);

  it('passes its own tests, the document check and the declaration checks', () => {
    const report = path.join(copy, '.generator-results.json');
    const files = [`test/integration/${NAME}.test.ts`, 'test/unit/openapi.test.ts', 'test/unit/declarations.test.ts', 'test/unit/boundaries.test.ts'];
    // Under CI the project's vitest config names the JSON report through CI_RESULTS_FILE (and its
    // reporter options win over the command line's); elsewhere the command line asks for it.
    const r = run('npx', ['vitest', 'run', ...files, '--reporter=json', `--outputFile=${report}`], 480_000, { CI_RESULTS_FILE: report });
    expect(r.status, output(r)).toBe(0);
    const results = JSON.parse(readFileSync(report, 'utf8')) as {
      numFailedTests: number;
      numPendingTests: number;
      testResults: { name: string; assertionResults: { status: string }[] }[];
    };
    expect(results.numFailedTests).toBe(0);
    expect(results.numPendingTests).toBe(0);
    const own = results.testResults.find((f) => f.name.endsWith(`${NAME}.test.ts`));
    expect(own?.assertionResults.map((a) => a.status)).toEqual(['passed', 'passed', 'passed', 'passed', 'passed']);
  }, 600_000);
});
