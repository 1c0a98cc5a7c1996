// The mutation score of every file `npm run test:mutation` mutates, from Stryker's JSON report:
// prints a table, and exits 1 when a file is under the minimum, missing from the report, or has
// no mutant that was tested (all of them ignored). Stryker's own `thresholds.break` is one score
// for all files together, which lets a well-tested file hide a poorly tested one.
//
//   npx tsx scripts/mutation-score.ts [report.json]
//
// The score is Stryker's: mutants detected (killed, or timed out) out of those detected or not
// (survived, or covered by no test); ignored mutants and those that did not compile or run are left
// out of both.
import { globSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const MINIMUM_SCORE = 80;

const ROOT = path.resolve(__dirname, '..');

interface Report {
  files: Record<string, { mutants: { status: string }[] }>;
}

interface Row {
  file: string;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  ignored: number;
  score: number | undefined;
  problem: string | undefined;
}

function rowOf(file: string, report: Report): Row {
  const mutants = report.files[file]?.mutants;
  const count = (status: string) => mutants?.filter((m) => m.status === status).length ?? 0;
  const [killed, timeout, survived, noCoverage, ignored] = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'Ignored'].map(count) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const valid = killed + timeout + survived + noCoverage;
  const score = valid > 0 ? (100 * (killed + timeout)) / valid : undefined;
  let problem: string | undefined;
  if (mutants === undefined) problem = 'not in the report';
  else if (mutants.some((m) => m.status === 'Pending')) problem = 'not finished';
  else if (score === undefined) problem = 'no mutant tested';
  else if (score < MINIMUM_SCORE) problem = `under ${MINIMUM_SCORE} %`;
  return { file, killed, timeout, survived, noCoverage, ignored, score, problem };
}

function table(rows: Row[]): string {
  const header = ['file', 'score', 'killed', 'timeout', 'survived', 'no cov', 'ignored', ''];
  const lines = rows.map((r) => [
    r.file,
    r.score === undefined ? '-' : r.score.toFixed(2),
    ...[r.killed, r.timeout, r.survived, r.noCoverage, r.ignored].map(String),
    r.problem ? `FAIL: ${r.problem}` : 'ok',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const format = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [format(header), ...lines.map(format)].join('\n');
}

async function main(): Promise<number> {
  const config = (
    (await import(pathToFileURL(path.join(ROOT, 'stryker.config.mjs')).href)) as { default: { mutate: string[]; jsonReporter: { fileName: string } } }
  ).default;
  const reportFile = path.resolve(ROOT, process.argv[2] ?? config.jsonReporter.fileName);
  let report: Report;
  try {
    report = JSON.parse(readFileSync(reportFile, 'utf8')) as Report;
  } catch (err) {
    console.error(`cannot read the mutation report ${path.relative(ROOT, reportFile)}: ${(err as Error).message} (run npm run test:mutation)`);
    return 1;
  }
  const files = [...new Set(config.mutate.flatMap((pattern) => globSync(pattern, { cwd: ROOT })))].sort();
  if (files.length === 0) {
    console.error('stryker.config.mjs mutates no file');
    return 1;
  }
  const rows = files.map((file) => rowOf(file, report));
  console.log(table(rows));
  const failed = rows.filter((r) => r.problem);
  if (failed.length > 0) {
    console.error(`\n${failed.length} of ${rows.length} files fail: every file needs ${MINIMUM_SCORE} % of its mutants killed by the tests.`);
    return 1;
  }
  console.log(`\nevery file has at least ${MINIMUM_SCORE} % of its mutants killed (${rows.length} files)`);
  return 0;
}

void main().then((code) => {
  process.exitCode = code;
});
