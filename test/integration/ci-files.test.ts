// The files GitHub reads (.github/workflows/ci.yml, .github/dependabot.yml) cannot run here: they
// are checked by parsing them and comparing them with what they drive (.ci/run, Dockerfile.backend,
// package.json). The SBOM script runs for real: it needs only the installed node_modules.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  if?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
}
interface Service {
  image: string;
  env?: Record<string, string>;
  ports?: string[];
  options?: string;
}
interface Job {
  name?: string;
  'runs-on': string;
  'timeout-minutes'?: number;
  services?: Record<string, Service>;
  env?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions: Record<string, string>;
  concurrency: { group: string; 'cancel-in-progress': boolean };
  jobs: Record<string, Job>;
}
interface DependabotUpdate {
  'package-ecosystem': string;
  directory: string;
  schedule: { interval: string };
  'open-pull-requests-limit'?: number;
  groups?: Record<string, { patterns?: string[]; 'update-types'?: string[] }>;
}

const workflowText = read('.github/workflows/ci.yml');
const workflow = parse(workflowText) as Workflow;
const jobs = Object.values(workflow.jobs);
const allSteps = jobs.flatMap((job) => job.steps);
const pkg = JSON.parse(read('package.json')) as {
  name: string;
  version: string;
  engines: { node: string };
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
};

function jobRunning(predicate: (step: Step) => boolean): Job {
  const found = jobs.filter((job) => job.steps.some(predicate));
  expect(found).toHaveLength(1);
  return found[0]!;
}
const testJob = () => jobRunning((s) => s.run?.includes('.ci/run') ?? false);
const imageJob = () => jobRunning((s) => s.uses?.startsWith('docker/build-push-action@') ?? false);
const sbomJob = () => jobRunning((s) => s.run?.trim() === 'npm run sbom');
const uploads = (job: Job) => job.steps.filter((s) => s.uses?.startsWith('actions/upload-artifact@'));
const uploadedPaths = (job: Job) =>
  uploads(job).flatMap((s) =>
    String(s.with?.path ?? '')
      .split('\n')
      .map((p) => p.trim())
      .filter(Boolean),
  );

/** The file the sbom script writes, from its --output-file (or -o) argument. */
function sbomOutputFile(script: string): string {
  const match = /(?:--output-file|-o)[ =](\S+)/.exec(script);
  expect(match, script).not.toBeNull();
  return match![1]!;
}

describe('.github/workflows/ci.yml', () => {
  it('runs on push and pull_request with a read-only token, cancelling superseded runs', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['pull_request', 'push']);
    expect(workflow.permissions).toEqual({ contents: 'read' });
    for (const job of jobs) expect((job as { permissions?: unknown }).permissions).toBeUndefined();
    expect(workflow.concurrency.group).toContain('${{ github.workflow }}');
    expect(workflow.concurrency['cancel-in-progress']).toBe(true);
  });

  it('has the test, image and SBOM jobs, each on ubuntu-latest with a time limit', () => {
    expect(Object.keys(workflow.jobs).sort()).toEqual(['image', 'sbom', 'test']);
    for (const [id, job] of Object.entries(workflow.jobs)) {
      expect(job['runs-on'], id).toBe('ubuntu-latest');
      expect(job['timeout-minutes'], id).toBeGreaterThan(0);
      expect(job['timeout-minutes'], id).toBeLessThanOrEqual(60);
    }
  });

  it('pins every action to a version tag, never a branch', () => {
    const uses = allSteps.flatMap((s) => (s.uses ? [s.uses] : []));
    expect(uses.length).toBeGreaterThan(0);
    for (const use of uses) {
      expect(use).toMatch(/^[\w.-]+\/[\w./-]+@v\d+(\.\d+){0,2}$/);
      expect(use).not.toMatch(/@(main|master|latest|HEAD)$/);
    }
  });

  it('runs exactly `bash .ci/run` in the test job, and nothing else calls it', () => {
    const job = testJob();
    const calls = allSteps.filter((s) => s.run?.includes('.ci/run'));
    expect(calls).toHaveLength(1);
    expect(calls[0]!.run!.trim()).toBe('bash .ci/run');
    expect(job).toBe(workflow.jobs.test);
  });

  it('gives the test job Redis and PostgreSQL service containers with health checks', () => {
    const { services } = testJob();
    expect(Object.keys(services ?? {}).sort()).toEqual(['postgres', 'redis']);
    const { redis, postgres } = services as { redis: Service; postgres: Service };
    expect(redis.image).toBe('redis:7');
    expect(postgres.image).toBe('postgres:15');
    expect(redis.options).toMatch(/--health-cmd "redis-cli ping"/);
    expect(postgres.options).toMatch(/--health-cmd "pg_isready\b/);
    for (const service of [redis, postgres]) {
      expect(service.options).toMatch(/--health-interval \d+s/);
      expect(service.options).toMatch(/--health-retries \d+/);
    }
    expect(postgres.env).toMatchObject({ POSTGRES_HOST_AUTH_METHOD: 'trust', POSTGRES_DB: 'test' });
  });

  it('points REDIS_URL and DATABASE_URL at the services, where .ci/run looks for them', () => {
    const job = testJob();
    const step = job.steps.find((s) => s.run?.trim() === 'bash .ci/run')!;
    const env = { ...job.env, ...step.env };
    const published = (service: Service) => service.ports!.map((p) => p.split(':')[0]);
    const redis = new URL(env.REDIS_URL!);
    const database = new URL(env.DATABASE_URL!);
    expect(redis.protocol).toBe('redis:');
    expect(database.protocol).toBe('postgres:');
    // .ci/run checks 127.0.0.1:6379 and 127.0.0.1:5432 and starts its own servers when nothing answers.
    const script = read('.ci/run');
    for (const [url, service, port] of [
      [redis, job.services!.redis!, '6379'],
      [database, job.services!.postgres!, '5432'],
    ] as const) {
      expect(url.hostname).toBe('127.0.0.1');
      expect(url.port).toBe(port);
      expect(published(service)).toContain(port);
      expect(script).toContain(`-h 127.0.0.1 -p ${port}`);
    }
    expect(database.username).toBe('postgres');
    expect(database.password).toBe('');
    expect(database.pathname).toBe(`/${job.services!.postgres!.env!.POSTGRES_DB}`);
    // The same URLs .ci/run uses by default.
    expect(script).toContain(`REDIS_URL:-${env.REDIS_URL}`);
    expect(script).toContain(`DATABASE_URL:-${env.DATABASE_URL}`);
  });

  it('installs beforehand, with sudo, every tool .ci/run would otherwise apt-get as root', () => {
    const job = testJob();
    const index = job.steps.findIndex((s) => s.run?.trim() === 'bash .ci/run');
    const before = job.steps
      .slice(0, index)
      .map((s) => s.run ?? '')
      .join('\n');
    const tools = [...read('.ci/run').matchAll(/command -v (\S+) >\/dev\/null \|\|.*apt_install/g)].map((m) => m[1]!);
    expect(tools.length).toBeGreaterThanOrEqual(8);
    for (const tool of tools) {
      // Chromium has no apt package on Ubuntu: the runner image's /usr/bin/chromium is required.
      if (tool === 'chromium') expect(before).toContain('[ -x /usr/bin/chromium ]');
      else expect(before, tool).toContain(`command -v ${tool} `);
    }
    expect(before).toMatch(/sudo .*apt-get install/);
    // The packages' own daemons must not start and take the services' ports.
    expect(before).toContain('/usr/sbin/policy-rc.d');
  });

  it('sets up the Node release in .nvmrc, with the npm cache', () => {
    for (const job of [testJob(), sbomJob()]) {
      const setup = job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'));
      expect(setup).toBeDefined();
      expect(setup!.with?.cache).toBe('npm');
      expect(setup!.with?.['node-version-file']).toBe('.nvmrc');
    }
  });

  it('uploads the test report and the short benchmark, dot-files included, even after a failure', () => {
    const job = testJob();
    const paths = uploadedPaths(job);
    expect(paths).toEqual(expect.arrayContaining(['.ci-results.json', '.ci-results-oldest.json', '.bench-short.md']));
    // Where those files come from: vitest's JSON reporter and the benchmark's short mode.
    expect(read('vitest.config.mts')).toMatch(/outputFile: process\.env\.CI_RESULTS_FILE \?\? ['"]\.ci-results\.json['"]/);
    expect(read('.ci/run')).toContain('CI_RESULTS_FILE=.ci-results-oldest.json');
    expect(read('bench/run.ts')).toMatch(/['"]\.bench-short\.md['"]/);
    const upload = uploads(job)[0]!;
    expect(upload.if).toBe('always()');
    expect(upload.with?.['include-hidden-files']).toBe(true);
  });

  it('builds Dockerfile.backend without pushing, runs node in it and checks its USER and CMD', () => {
    const job = imageJob();
    const build = job.steps.find((s) => s.uses?.startsWith('docker/build-push-action@'))!;
    expect(build.with).toMatchObject({ file: 'Dockerfile.backend', push: false, load: true });
    const tag = String(build.with!.tags);
    expect(job.env?.IMAGE ?? tag).toBe(tag);
    const runs = job.steps.map((s) => s.run ?? '').join('\n');
    expect(runs).toMatch(/docker run --rm "\$IMAGE" node --version/);
    expect(runs).toContain("docker inspect --format '{{.Config.User}}'");
    expect(runs).toContain("docker inspect --format '{{json .Config.Cmd}}'");
    // The expected values are the Dockerfile's own.
    const dockerfile = read('Dockerfile.backend');
    const user = /^USER (\S+)$/m.exec(dockerfile)![1]!;
    expect(runs).toContain(`test "$user" = ${user}`);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(runs).toContain(`test "$cmd" = '${JSON.stringify(cmd)}'`);
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(runs).toContain(`test "$entrypoint" = '${JSON.stringify(entrypoint)}'`);
  });

  it('produces the SBOM with the package.json script and uploads the file it writes', () => {
    const job = sbomJob();
    const script = pkg.scripts.sbom ?? '';
    expect(script).toMatch(/^cyclonedx-npm /);
    expect(script).toMatch(/--omit[ =]dev\b/);
    expect(script).toMatch(/--output-format[ =]JSON\b/);
    const output = sbomOutputFile(script);
    const ci = job.steps.findIndex((s) => s.run?.trim() === 'npm ci --no-audit --no-fund');
    const sbom = job.steps.findIndex((s) => s.run?.trim() === 'npm run sbom');
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(sbom).toBeGreaterThan(ci);
    expect(uploadedPaths(job)).toEqual([output]);
    expect(read('.gitignore').split('\n')).toContain(output);
  });
});

describe('.github/dependabot.yml', () => {
  const config = parse(read('.github/dependabot.yml')) as { version: number; updates: DependabotUpdate[] };
  const byEcosystem = new Map(config.updates.map((u) => [u['package-ecosystem'], u]));

  it('is version 2 and covers npm, docker, docker-compose and github-actions from the root', () => {
    expect(config.version).toBe(2);
    expect([...byEcosystem.keys()].sort()).toEqual(['docker', 'docker-compose', 'github-actions', 'npm']);
    for (const update of config.updates) {
      expect(update.directory, update['package-ecosystem']).toBe('/');
      expect(update.schedule.interval, update['package-ecosystem']).toBe('weekly');
      expect(update['open-pull-requests-limit'], update['package-ecosystem']).toBeGreaterThan(0);
    }
  });

  it('groups npm minor and patch updates', () => {
    const groups = Object.values(byEcosystem.get('npm')!.groups ?? {});
    expect(groups.some((g) => g.patterns?.includes('*') && [...(g['update-types'] ?? [])].sort().join() === 'minor,patch')).toBe(true);
  });
});

describe('npm run sbom', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'rampart-sbom-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  interface Component {
    group?: string;
    name: string;
    version?: string;
    purl?: string;
    components?: Component[];
  }
  const fullName = (c: Component) => (c.group ? `${c.group}/${c.name}` : c.name);

  it('writes CycloneDX JSON: this package, its production dependencies with versions and purls, no dev tools', () => {
    const out = path.join(work, 'sbom.cdx.json');
    // A later --output-file wins over the script's own, so the working tree is left alone.
    execFileSync('npm', ['run', 'sbom', '--silent', '--', '--output-file', out], { cwd: ROOT, stdio: 'pipe', timeout: 60_000 });
    const bom = JSON.parse(readFileSync(out, 'utf8')) as {
      bomFormat: string;
      specVersion: string;
      metadata: { component: Component };
      components: Component[];
    };
    expect(bom.bomFormat).toBe('CycloneDX');
    expect(bom.specVersion).toMatch(/^1\.\d+$/);
    expect(bom.metadata.component).toMatchObject({ name: pkg.name, version: pkg.version, purl: `pkg:npm/${pkg.name}@${pkg.version}` });

    const all: Component[] = [];
    const walk = (list: Component[] | undefined) => {
      for (const c of list ?? []) {
        all.push(c);
        walk(c.components);
      }
    };
    walk(bom.components);
    const names = new Set(all.map(fullName));

    for (const name of Object.keys(pkg.dependencies)) {
      const installed = (JSON.parse(read(`node_modules/${name}/package.json`)) as { version: string }).version;
      const component = all.find((c) => fullName(c) === name && c.version === installed);
      expect(component, name).toBeDefined();
      const purlName = name.startsWith('@') ? `%40${name.slice(1)}` : name;
      expect(component!.purl, name).toBe(`pkg:npm/${purlName}@${installed}`);
    }
    expect(names.has('express')).toBe(true);
    expect(names.has('ioredis')).toBe(true);

    // Development tools only (not reachable from a production dependency): omitted. (yaml, a
    // development tool here too, is also a dependency of the OpenTelemetry SDK's configuration.)
    for (const dev of [
      'vitest',
      'typescript',
      'tsx',
      'eslint',
      'prettier',
      'supertest',
      'knip',
      '@cyclonedx/cyclonedx-npm',
      '@stoplight/spectral-cli',
      'autocannon',
      'playwright-core',
    ]) {
      expect(names.has(dev), dev).toBe(false);
    }
  }, 90_000);
});

// The supported Node lines are named in several places; these must agree, and the guard that
// stops `npm start` / `npm test` on an unsupported Node must really stop it.
describe('Node lines: engines, .nvmrc, the image, CI and the README agree', () => {
  const { satisfies } = createRequire(__filename)('../../scripts/check-node.cjs') as { satisfies: (version: string, range: string) => boolean };
  const nvmrc = read('.nvmrc').trim();
  const ciRun = read('.ci/run');
  const oldest = /^NODE_OLDEST=(\S+)$/m.exec(ciRun)?.[1];

  it('reads the engines range as npm does', () => {
    const range = pkg.engines.node;
    expect(range).toBe('^22.15.0 || ^24.0.0 || >=26.0.0');
    for (const v of ['22.15.0', '22.23.5', '24.0.0', '24.22.3', '26.0.0', '26.12.1', '27.1.0']) expect(satisfies(v, range), v).toBe(true);
    for (const v of ['20.20.2', '21.7.3', '22.14.0', '22.11.9', '23.11.0', '25.9.0', '18.20.8']) expect(satisfies(v, range), v).toBe(false);
    expect(() => satisfies('22.12.0', '~22.12.0')).toThrow(/cannot read/);
  });

  it('.nvmrc is the image release and a supported one; CI tests it and the oldest supported line', () => {
    expect(nvmrc).toMatch(/^26\.\d+\.\d+$/);
    expect(satisfies(nvmrc, pkg.engines.node)).toBe(true);
    expect(/^ARG NODE_IMAGE=node:(\S+)-trixie-slim$/m.exec(read('Dockerfile.backend'))?.[1]).toBe(nvmrc);
    expect(ciRun).toContain('scripts/node-from-npm "$(cat .nvmrc)"');
    expect(oldest).toMatch(/^22\.\d+\.\d+$/);
    expect(satisfies(oldest!, pkg.engines.node)).toBe(true);
    expect(ciRun).toContain('scripts/node-from-npm "$NODE_OLDEST"');
    expect(ciRun).toMatch(/PATH="\$node_oldest_bin:\$PATH".*npx vitest run test\/unit test\/integration/);
    expect(read('.npmrc')).toMatch(/^engine-strict=true$/m);
    const readme = read('README.md');
    expect(readme).toContain('Node.js 22.15 or newer');
    expect(readme).toContain('scripts/node-from-npm');
  });

  it('npm start and npm test refuse an unsupported Node with what to do, and pass a supported one', () => {
    expect(pkg.scripts.prestart).toMatch(/^node scripts\/check-node\.cjs && /);
    expect(pkg.scripts.pretest).toBe('node scripts/check-node.cjs');
    // The guard reads package.json beside it: give a copy a range the running Node misses.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-node-check-'));
    try {
      mkdirSync(path.join(dir, 'scripts'));
      copyFileSync(path.join(ROOT, 'scripts/check-node.cjs'), path.join(dir, 'scripts/check-node.cjs'));
      const run = (range: string) => {
        writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ engines: { node: range } }));
        return spawnSync(process.execPath, ['scripts/check-node.cjs'], { cwd: dir, encoding: 'utf8' });
      };
      const refused = run('>=99.0.0');
      expect(refused.status).toBe(1);
      expect(refused.stderr).toContain(`Rampart needs Node.js >=99.0.0; this is Node.js ${process.versions.node}.`);
      expect(refused.stderr).toContain('nvm install');
      expect(refused.stderr).toContain('scripts/node-from-npm');
      const passed = run(pkg.engines.node);
      expect(passed.status).toBe(0);
      expect(passed.stderr).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('node-from-npm refuses what is not an exact version, before reaching the registry', () => {
    for (const bad of ['26', 'latest', '26.x', '26.12.1; rm -rf /']) {
      const r = spawnSync(path.join(ROOT, 'scripts/node-from-npm'), [bad], { encoding: 'utf8' });
      expect(r.status, bad).toBe(2);
      expect(r.stderr).toContain('is not an exact version');
    }
  });
});

// The scanners cannot run here (they need the Debian tools and minutes); what is checked is that CI
// runs them, bounded, at the right moment, and installs each one the script calls.
describe('npm run scan', () => {
  const ciRun = read('.ci/run');
  const lines = ciRun.split('\n');
  const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
  const scanLine = at(/^timeout \d+ npm run scan$/);

  it('is scripts/scan.ts, which .ci/run runs under timeout after every test stage and before the benchmark', () => {
    expect(pkg.scripts.scan).toBe('node --import tsx scripts/scan.ts');
    expect(read('scripts/scan.ts')).toContain('process.exit(failed ? 1 : 0)');
    expect(scanLine).toBeGreaterThan(0);
    expect(lines.filter((l) => l.includes('npm run scan') && !l.startsWith('#') && !l.startsWith('log '))).toHaveLength(1);
    const seconds = Number(/^timeout (\d+) npm run scan$/m.exec(ciRun)![1]);
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThanOrEqual(20 * 60);
    expect(scanLine).toBeGreaterThan(at(/^timeout \d+ npm test\b/));
    expect(scanLine).toBeGreaterThan(at(/^verdict \.ci-results\.json$/));
    expect(scanLine).toBeGreaterThan(at(/^verdict \.ci-results-oldest\.json$/));
    expect(scanLine).toBeLessThan(at(/npm run bench/));
  });

  it('installs, before running the scan, every scanner the script calls and the word lists it reads', () => {
    const script = read('scripts/scan.ts');
    const tools = new Set([...script.matchAll(/\brun\(\s*'([\w.-]+)'/g)].map((m) => m[1]!));
    expect(tools).toEqual(new Set(['shellcheck', 'testssl', 'nmap', 'sqlmap', 'wapiti', 'ffuf']));
    const before = lines.slice(0, scanLine).join('\n');
    for (const tool of tools) expect(before, tool).toMatch(new RegExp(`^command -v ${tool} >/dev/null \\|\\| apt_install `, 'm'));
    expect(script).toContain('/usr/share/dirb/wordlists/');
    expect(before).toMatch(/^command -v dirb >\/dev\/null \|\| apt_install .*\bdirb$/m);
  });
});
