// There is no Docker engine here: the compose file is checked with a real parser (Debian's
// docker-compose) and by reading its structure; the Dockerfile's stages are run as the same
// commands outside a container, and the resulting runtime tree is started and health-checked.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { productionNodeArgs } from '../helpers/pm2';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, REDIS_URL, toolAvailable } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const COMPOSE = path.join(ROOT, 'docker-compose.production.yml');
const HAS_COMPOSE = toolAvailable(spawnSync('docker-compose', ['version']).status === 0, 'docker-compose (Debian package docker-compose)');

/** The stack, and the optional monitoring profile. */
const CORE = ['backend', 'nginx', 'postgres', 'redis', 'redis-cache'];
const MONITORING = ['grafana', 'node-exporter', 'postgres-exporter', 'prometheus', 'redis-cache-exporter', 'redis-exporter'];

const REQUIRED = {
  JWT_ACCESS_SECRET: 'a'.repeat(64),
  JWT_REFRESH_SECRET: 'b'.repeat(64),
  OPS_TOKEN: 'c'.repeat(64),
  REDIS_PASSWORD: 'd'.repeat(64),
  REDIS_CACHE_PASSWORD: 'e'.repeat(64),
  POSTGRES_PASSWORD: 'f'.repeat(64),
  CORS_ORIGINS: 'https://app.example.com',
  TLS_DIR: '/tmp',
};

function compose(env: Record<string, string>, ...args: string[]) {
  const clean: Record<string, string> = { PATH: process.env.PATH ?? '' };
  return spawnSync('docker-compose', ['-f', COMPOSE, ...args], { env: { ...clean, ...env }, encoding: 'utf8', cwd: ROOT });
}

describe.skipIf(!HAS_COMPOSE)(
  `docker-compose.production.yml${HAS_COMPOSE ? '' : ' [skipped: docker-compose not installed (Debian package docker-compose)]'}`,
  () => {
    it('parses with docker-compose config', () => {
      const result = compose(REQUIRED, 'config', '--quiet');
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(compose(REQUIRED, 'config', '--services').stdout.trim().split('\n').sort()).toEqual([...CORE, ...MONITORING].sort());
      expect(compose(REQUIRED, 'config', '--profiles').stdout.trim()).toBe('monitoring');
    });

    it('parses with the monitoring profile, with or without a Grafana password (Grafana itself refuses to start without one)', () => {
      for (const env of [REQUIRED, { ...REQUIRED, GRAFANA_ADMIN_PASSWORD: 'g'.repeat(32) }]) {
        const result = compose(env, '--profile', 'monitoring', 'config', '--quiet');
        expect(result.stderr).toBe('');
        expect(result.status).toBe(0);
      }
    });

    it.each(Object.keys(REQUIRED).filter((k) => k !== 'CORS_ORIGINS'))('refuses to start without %s, saying so', (name) => {
      const env: Record<string, string> = { ...REQUIRED };
      delete env[name];
      const result = compose(env, 'config', '--quiet');
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(name);
    });

    it('requires CORS_ORIGINS to be set, empty allowed', () => {
      const { CORS_ORIGINS: _c, ...rest } = REQUIRED;
      expect(compose(rest, 'config', '--quiet').status).not.toBe(0);
      expect(compose({ ...rest, CORS_ORIGINS: '' }, 'config', '--quiet').status).toBe(0);
    });
  },
);

describe('compose structure', () => {
  const doc = parse(readFileSync(COMPOSE, 'utf8')) as {
    services: Record<string, Record<string, any>>; // eslint-disable-line @typescript-eslint/no-explicit-any
    volumes: Record<string, unknown>;
    networks: Record<string, { internal?: boolean } | null>;
  };
  const services = doc.services;

  it('publishes nginx, and Prometheus and Grafana on the loopback only', () => {
    for (const [name, service] of Object.entries(services)) {
      if (name === 'nginx') expect(service.ports.length).toBe(2);
      else if (name === 'prometheus') expect(service.ports).toEqual(['127.0.0.1:${PROMETHEUS_PORT:-9090}:9090']);
      else if (name === 'grafana') expect(service.ports).toEqual(['127.0.0.1:${GRAFANA_PORT:-3000}:3000']);
      else expect(service.ports, name).toBeUndefined();
    }
    expect(services.backend!.expose).toEqual(['3000']);
  });

  it('runs the monitoring services only in the monitoring profile, the stack in every one', () => {
    for (const [name, service] of Object.entries(services)) expect(service.profiles, name).toEqual(MONITORING.includes(name) ? ['monitoring'] : undefined);
    expect(Object.keys(services).sort()).toEqual([...CORE, ...MONITORING].sort());
  });

  it("gives Prometheus monitoring/prometheus and the ops token, and the exporters the stack's own credentials", () => {
    const prometheus = services.prometheus!;
    expect(prometheus.volumes).toContain('./monitoring/prometheus:/etc/prometheus:ro');
    expect(prometheus.environment.OPS_TOKEN).toBe('${OPS_TOKEN:?OPS_TOKEN is required (32+ bytes)}');
    // The token goes where prometheus.yml's credentials_file points, readable by Prometheus only.
    const config = parse(readFileSync(path.join(ROOT, 'monitoring/prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: {
        job_name: string;
        authorization?: { credentials_file: string };
        static_configs?: { targets: string[] }[];
        dns_sd_configs?: { names: string[]; type: string; port: number }[];
      }[];
    };
    const app = config.scrape_configs.find((j) => j.job_name === 'rampart')!;
    expect(prometheus.command[0]).toContain(`umask 077 && printf '%s' "$$OPS_TOKEN" > ${app.authorization!.credentials_file} &&`);
    expect(prometheus.command[0]).toContain('exec /bin/prometheus --config.file=/etc/prometheus/prometheus.yml');
    expect(prometheus.networks).toEqual(['internal', 'monitoring']);
    // Every scrape target is a service of this file, on the port its image listens on.
    const targets = config.scrape_configs.flatMap((j) => [
      ...(j.static_configs ?? []).flatMap((c) => c.targets),
      ...(j.dns_sd_configs ?? []).flatMap((c) => c.names.map((name) => `${name}:${c.port}`)),
    ]);
    // The app's replicas are found through Docker's DNS: all of them, however many.
    expect(app.dns_sd_configs).toEqual([{ names: ['backend'], type: 'A', port: 3000, refresh_interval: '30s' }]);
    expect(targets.sort()).toEqual(['backend:3000', 'node-exporter:9100', 'postgres-exporter:9187', 'redis-cache-exporter:9121', 'redis-exporter:9121']);
    for (const target of targets) expect(services[target.split(':')[0]!]!.networks, target).toContain('internal');
    expect(services['redis-exporter']!.environment).toEqual({
      REDIS_ADDR: 'redis://redis:6379',
      REDIS_PASSWORD: '${REDIS_PASSWORD:?REDIS_PASSWORD is required}',
    });
    expect(services['redis-cache-exporter']!.environment.REDIS_ADDR).toBe('redis://redis-cache:6379');
    expect(services['postgres-exporter']!.environment.DATA_SOURCE_PASS).toBe('${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}');
  });

  it('gives Grafana the provisioned data source and dashboards, and no default password', () => {
    const grafana = services.grafana!;
    const provider = parse(readFileSync(path.join(ROOT, 'monitoring/grafana/provisioning/dashboards/rampart.yml'), 'utf8')) as {
      providers: { options: { path: string } }[];
    };
    expect(grafana.volumes).toContain('./monitoring/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(grafana.volumes).toContain(`./monitoring/grafana/dashboards:${provider.providers[0]!.options.path}:ro`);
    const datasources = parse(readFileSync(path.join(ROOT, 'monitoring/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as {
      datasources: { url: string }[];
    };
    expect(datasources.datasources[0]!.url).toBe('http://prometheus:9090');
    expect(grafana.networks).toEqual(['monitoring']);
    expect(grafana.environment.GF_SECURITY_ADMIN_PASSWORD).toBe('${GRAFANA_ADMIN_PASSWORD:-}');
    expect(grafana.command[0]).toMatch(/^if \[ -z "\$\$GF_SECURITY_ADMIN_PASSWORD" \]; then .* exit 1; fi; exec \/run.sh$/);
    expect(grafana.environment.GF_AUTH_ANONYMOUS_ENABLED).toBe('false');
    expect(grafana.environment.GF_USERS_ALLOW_SIGN_UP).toBe('false');
  });

  it('has healthchecks, restart policies, resource limits and log rotation everywhere', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, name).toBeDefined();
      expect(service.restart, name).toBe('unless-stopped');
      expect(service.deploy?.resources?.limits?.memory, name).toBeDefined();
      expect(service.logging?.options?.['max-size'], name).toBeDefined();
    }
  });

  it('starts each service only after what it needs is healthy', () => {
    expect(services.nginx!.depends_on).toEqual({ backend: { condition: 'service_healthy' } });
    expect(Object.values(services.backend!.depends_on as Record<string, { condition: string }>).every((d) => d.condition === 'service_healthy')).toBe(true);
    expect(Object.keys(services.backend!.depends_on).sort()).toEqual(['postgres', 'redis', 'redis-cache']);
  });

  it('keeps security state where eviction cannot drop it, and the cache evicting', () => {
    const security = (services.redis!.command as string[]).join(' ');
    expect(security).toMatch(/--maxmemory-policy noeviction/);
    expect(security).toMatch(/--appendonly yes/);
    for (const command of ['FLUSHALL', 'FLUSHDB', 'DEBUG', 'CONFIG', 'KEYS']) expect(security).toContain(`--rename-command ${command}`);
    const cache = (services['redis-cache']!.command as string[]).join(' ');
    expect(cache).toMatch(/--maxmemory-policy allkeys-lru/);
    expect(cache).toMatch(/--appendonly no/);
    expect(services.backend!.environment.CACHE_REDIS_URL).toContain('@redis-cache:');
    expect(services.backend!.environment.REDIS_URL).toContain('@redis:');
  });

  it('has no default for any secret, named volumes and an internal network', () => {
    const text = readFileSync(COMPOSE, 'utf8');
    for (const secret of ['JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET', 'OPS_TOKEN', 'REDIS_PASSWORD', 'REDIS_CACHE_PASSWORD', 'POSTGRES_PASSWORD']) {
      const uses = [...text.matchAll(new RegExp(`\\$\\{${secret}([^}]*)\\}`, 'g'))].map((m) => m[1]!);
      expect(uses.length, secret).toBeGreaterThan(0);
      for (const use of uses) expect(use.startsWith(':?'), `${secret}${use}`).toBe(true);
    }
    expect(Object.keys(doc.volumes).sort()).toEqual(['grafana-data', 'nginx-logs', 'postgres-data', 'prometheus-data', 'redis-data']);
    expect(doc.networks.internal?.internal).toBe(true);
    for (const name of ['backend', 'redis', 'redis-cache', 'postgres']) expect(services[name]!.networks).toEqual(['internal']);
    expect(services.backend!.environment.NODE_ENV).toBe('production');
    expect(services.backend!.environment.TRUST_PROXY).toBe('1');
  });

  it('documents every variable it reads in .env.production.example', () => {
    const text = readFileSync(COMPOSE, 'utf8')
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .join('\n');
    const example = readFileSync(path.join(ROOT, '.env.production.example'), 'utf8');
    const used = new Set([...text.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!));
    for (const name of used) expect(example, name).toMatch(new RegExp(`^${name}=`, 'm'));
  });
});

describe('Dockerfile.backend, its steps run outside a container', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile.backend'), 'utf8');
  let work: string;
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'rampart-image-'));
    if (DATABASE_URL) db = await createTestDatabase();
  });
  afterAll(async () => {
    rmSync(work, { recursive: true, force: true });
    await db?.drop();
  });

  it('is multi-stage, pinned, non-root, with tini, a healthcheck and node as the command', () => {
    const stages = [...dockerfile.matchAll(/^FROM (\S+) AS (\w+)/gm)].map((m) => m[2]);
    expect(stages).toEqual(['deps', 'build', 'runtime']);
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:\d+\.\d+\.\d+-[a-z]+-slim$/m);
    // Numeric, so that Kubernetes' runAsNonRoot can verify it: the official image's node user.
    expect(dockerfile).toMatch(/^USER 1000:1000$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK .*\n\s+CMD \["node", "-e", .*\/health/m);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    // The heap follows the container's memory limit (proved under a cgroup below); the growing
    // factor is the one PM2 gives its workers (ecosystem.config.js), whose heap size is per host.
    expect(cmd).toEqual(['node', '--max-old-space-size-percentage=75', '--heap-growing-percent=70', 'dist/server.js']);
    const notHeapSize = (args: string[]) => args.filter((a) => !a.startsWith('--max-old-space-size'));
    expect(notHeapSize(cmd.slice(1, -1))).toEqual(notHeapSize(productionNodeArgs()));
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
  });

  it('builds and starts from the runtime tree, with production dependencies only', async () => {
    // deps stage
    const deps = path.join(work, 'deps');
    mkdirSync(deps);
    for (const f of ['package.json', 'package-lock.json']) cpSync(path.join(ROOT, f), path.join(deps, f));
    execFileSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: deps,
      stdio: 'ignore',
      env: { ...process.env, NODE_ENV: 'production' },
    });
    // build stage
    const build = path.join(work, 'build');
    mkdirSync(build);
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) cpSync(path.join(ROOT, f), path.join(build, f));
    cpSync(path.join(ROOT, 'src'), path.join(build, 'src'), { recursive: true });
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: build, stdio: 'ignore' });
    execFileSync('npm', ['run', 'build'], { cwd: build, stdio: 'ignore' });
    // runtime stage: exactly the COPY lines' sources
    const app = path.join(work, 'app');
    mkdirSync(app);
    cpSync(path.join(ROOT, 'package.json'), path.join(app, 'package.json'));
    cpSync(path.join(deps, 'node_modules'), path.join(app, 'node_modules'), { recursive: true, verbatimSymlinks: true });
    cpSync(path.join(build, 'dist'), path.join(app, 'dist'), { recursive: true });
    cpSync(path.join(ROOT, 'migrations'), path.join(app, 'migrations'), { recursive: true });
    expect(existsSync(path.join(app, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules/vitest'))).toBe(false);
    expect(existsSync(path.join(app, 'node_modules/express'))).toBe(true);

    const port = await freePort();
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', PORT: String(port) };
    if (db && REDIS_URL) {
      Object.assign(env, {
        NODE_ENV: 'production',
        REDIS_URL,
        REDIS_KEY_PREFIX: `rampart-image-${process.pid}:`,
        DATABASE_URL: db.url,
        JWT_ACCESS_SECRET: 'a'.repeat(64),
        JWT_REFRESH_SECRET: 'b'.repeat(64),
        CORS_ORIGINS: '',
        TRUST_PROXY: '1',
      });
    }
    // As in the image: an unprivileged user, in a directory it cannot write (the root filesystem
    // read-only), so any write outside /tmp would stop the start.
    const node = unprivilegedNode();
    chmodSync(work, 0o755);
    execFileSync('chmod', ['-R', 'a+rX,a-w', app]);
    const wrote = spawnSync(...asUnprivileged(node, ['-e', "require('fs').writeFileSync('probe', '')"]), { cwd: app, env });
    expect(String(wrote.stderr)).toMatch(/EACCES/);
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(cmd[0]).toBe('node');
    const child = spawn(...asUnprivileged(node, cmd.slice(1)), { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      // The HEALTHCHECK command, as Docker would run it inside the container.
      const health = JSON.parse(/^\s+CMD (\["node", "-e".*\])$/m.exec(dockerfile)![1]!) as string[];
      let healthy = false;
      for (let i = 0; i < 60 && !healthy; i++) {
        await new Promise((r) => setTimeout(r, 250));
        healthy = spawnSync(process.execPath, health.slice(1), { env }).status === 0;
      }
      expect(healthy, output).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(output).toMatch(/shutdown complete/);
    expect(readdirSync(app).sort()).toEqual(['dist', 'migrations', 'node_modules', 'package.json']);
    // Two npm installs and a build, as the image's stages do: about 2.5 minutes alone on two cores,
    // twice that while other test files run beside it.
  }, 420_000);

  // Under a memory cgroup of our own (v1 or v2) where this runs as root; elsewhere (CI runs as a
  // user) against the memory node sees, which is the cgroup limit inside a container.
  const cgroup = memoryCgroup();
  it(`sizes the V8 heap at 75 % of the memory it is given, with the image's flags (${cgroup ? 'memory cgroups of 256 and 512 MiB' : 'the memory node sees: no writable memory cgroup'})`, () => {
    const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    const flags = cmd.slice(1, -1);
    const MiB = 1024 * 1024;
    if (!cgroup) {
      const script = 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))';
      const given = Math.min(process.constrainedMemory() || Infinity, os.totalmem());
      const heap = Number(execFileSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8' }));
      // 75 % for the old space, plus V8's young generation (tens of MB).
      expect(heap / given, `${heap / MiB} MiB of ${given / MiB} MiB`).toBeGreaterThan(0.74);
      expect(heap / given, `${heap / MiB} MiB of ${given / MiB} MiB`).toBeLessThan(0.85);
      return;
    }
    for (const limitMiB of [256, 512]) {
      const heap = cgroup.run(limitMiB * MiB, flags);
      // 75 % of the limit for the old space, plus V8's young generation.
      expect(heap / (limitMiB * MiB), `${heap / MiB} MiB`).toBeGreaterThan(0.7);
      expect(heap / (limitMiB * MiB), `${heap / MiB} MiB`).toBeLessThan(0.85);
    }
  }, 60_000);
});

/** The running node binary, where an unprivileged user can execute it (this one may sit in /root). */
function unprivilegedNode(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-node-'));
  chmodSync(dir, 0o755);
  const target = path.join(dir, 'node');
  try {
    linkSync(process.execPath, target);
  } catch {
    cpSync(process.execPath, target);
  }
  chmodSync(target, 0o755);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return target;
}

/** As root, the command under nobody (65534) with no groups; as anyone else, as they are. */
function asUnprivileged(node: string, args: string[]): [string, string[]] {
  if (process.getuid?.() !== 0) return [node, args];
  return ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', node, ...args]];
}

interface MemoryCgroup {
  /** heap_size_limit (bytes) of a node started with these flags inside a group limited to this many bytes. */
  run(limitBytes: number, flags: string[]): number;
}

function memoryCgroup(): MemoryCgroup | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const v1 = '/sys/fs/cgroup/memory';
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : undefined;
  const parent = existsSync(path.join(v1, 'memory.limit_in_bytes')) ? v1 : v2;
  if (!parent) return undefined;
  const limitFile = parent === v1 ? 'memory.limit_in_bytes' : 'memory.max';
  const probe = path.join(parent, `rampart-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    writeFileSync(path.join(probe, limitFile), String(256 * 1024 * 1024));
  } catch {
    return undefined;
  } finally {
    try {
      rmdirSync(probe);
    } catch {
      // not created
    }
  }
  return {
    run(limitBytes, flags) {
      const group = path.join(parent, `rampart-heap-${process.pid}-${limitBytes}`);
      mkdirSync(group);
      try {
        writeFileSync(path.join(group, limitFile), String(limitBytes));
        const script = 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))';
        const out = execFileSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', group, process.execPath, ...flags, '-e', script], {
          encoding: 'utf8',
        });
        return Number(out);
      } finally {
        rmdirSync(group);
      }
    },
  };
}
