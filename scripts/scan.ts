// Security scan (npm run scan): independent scanners from Debian against the app in production
// mode (real Redis and PostgreSQL, a fresh database and key prefix) behind the shipped nginx with a
// self-signed certificate, everything on loopback. The scan profile raises the app's rate limits and
// nginx's edge limits so that the scanners reach the handlers; the app's own /metrics (read with the
// ops token) before and after each tool shows which routes they reached. Meanwhile a client on a
// second loopback address (127.0.0.2) asks for /health every quarter second. One line per tool;
// exit 1 on any finding. What each tool checks and what is waived: docs/security.md, "Scanners".
//
//   npm run scan                         every tool (apt-get install testssl.sh sqlmap wapiti nmap ffuf dirb shellcheck)
//   npm run scan -- --only sqlmap,ffuf   some of them
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { deleteRedisPrefix } from '../test/helpers/app';
import { createTestDatabase, type TestDatabase } from '../test/helpers/database';
import { NGINX, TestNginx } from '../test/helpers/nginx';
import { productionNodeArgs } from '../test/helpers/pm2';
import { freePort } from '../test/helpers/redis-server';

const ROOT = path.resolve(__dirname, '..');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const PROBE_ADDRESS = '127.0.0.2';
// dirb's two general lists, merged (Debian has no seclists).
const WORDLISTS = ['/usr/share/dirb/wordlists/common.txt', '/usr/share/dirb/wordlists/big.txt'];
// nmap's HTTP scripts speak TLS first only to ports it knows as TLS ones (nginx answers plain HTTP
// on its TLS port, which would otherwise win): the first of these that is free.
const TLS_PORTS = [4433, 8443, 5986, 6679, 6697, 8883, 9001];
// testssl findings above LOW that only the self-signed test certificate causes.
const WAIVED_TLS: Record<string, string> = {
  cert_chain_of_trust: 'self-signed: no CA to chain to',
  cert_revocation: 'a self-signed certificate names no CRL or OCSP responder',
};
const RAISED = '1000000000';
const ALL_TOOLS = ['shellcheck', 'testssl', 'nmap', 'sqlmap', 'wapiti', 'ffuf'];
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1]!.split(',') : ALL_TOOLS;

const work = mkdtempSync(path.join(os.tmpdir(), 'rampart-scan-'));
const children = new Set<ChildProcess>();
const lines: string[] = [];
let failed = false;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function report(tool: string, ok: boolean, figures: string): void {
  const line = `${tool.padEnd(10)} ${ok ? 'PASS' : 'FAIL'}  ${figures}`;
  lines.push(line);
  failed ||= !ok;
  process.stdout.write(`== ${line}\n`);
}

/** A scanner under coreutils' timeout (killed 10 s after it if it ignores TERM); its output, also kept in the work directory. */
function run(tool: string, args: string[], seconds: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('timeout', ['--kill-after=10', String(seconds), tool, ...args], { cwd: work, env: { ...process.env, TERM: 'dumb' } });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      if (code === 124) out += `\n${tool} did not finish within ${seconds} s\n`;
      resolve({ code, out });
    });
  });
}

function request(
  port: number,
  urlPath: string,
  options: { tls?: boolean; method?: string; body?: unknown; headers?: Record<string, string>; localAddress?: string } = {},
) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
    const send = options.tls ? https.request : http.request;
    const req = send(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: options.method ?? 'GET',
        agent: false,
        rejectUnauthorized: false,
        localAddress: options.localAddress,
        timeout: 5000,
        headers: { ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}), ...options.headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });

/** Every shell script in the repository: *.sh, and any tracked file whose first line is a sh or bash shebang. */
function shellScripts(): string[] {
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  return files.filter((f) => {
    if (f.endsWith('.sh')) return true;
    try {
      return /^#!.*\b(ba)?sh\b/.test(readFileSync(path.join(ROOT, f), 'utf8').slice(0, 100).split('\n')[0]!);
    } catch {
      return false; // a submodule or a file deleted in the working tree
    }
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  let app: ChildProcess | undefined;
  let nginx: TestNginx | undefined;
  let database: TestDatabase | undefined;
  const prefix = `rampart-scan-${randomUUID().slice(0, 8)}:`;
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= stopEverything());
  const stopEverything = async () => {
    for (const child of children) child.kill('SIGTERM');
    if (app && app.exitCode === null) {
      const exited = new Promise((r) => app!.once('exit', r));
      app.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
    }
    await nginx?.stop().catch(() => undefined);
    await deleteRedisPrefix(REDIS_URL, prefix).catch(() => undefined);
    await database?.drop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  // The signal may come more than once (timeout signals the whole process group, and npm passes it
  // on): every one must find a listener, or the process ends before the clean-up does. One process
  // (node --import tsx, not the tsx command, whose parent kills a child slow to acknowledge).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      process.stderr.write(`scan: ${signal}, cleaning up\n`);
      void cleanup().finally(() => process.exit(1));
    });
  }

  const probe = { ok: 0, total: 0, running: true };
  try {
    if (only.includes('shellcheck')) {
      const begun = Date.now();
      const scripts = shellScripts();
      const r = await run('shellcheck', ['--format=gcc', ...scripts.map((f) => path.join(ROOT, f))], 120);
      const findings = r.out.split('\n').filter((l) => /: (error|warning|note|style):/.test(l));
      if (r.code !== 0) process.stdout.write(r.out);
      report(
        'shellcheck',
        r.code === 0 && scripts.length > 0,
        `${Math.round((Date.now() - begun) / 1000)} s; ${scripts.length} scripts (${scripts.join(', ')}), ${findings.length} findings`,
      );
    }
    if (!only.some((t) => t !== 'shellcheck')) return;
    if (!NGINX) throw new Error('nginx is not installed (Debian package nginx)');

    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    database = await createTestDatabase(DATABASE_URL);
    const appPort = await freePort();
    const opsToken = randomBytes(32).toString('hex');
    const appLog = openSync(path.join(work, 'app.log'), 'a');
    app = spawn(process.execPath, [...productionNodeArgs(), path.join(ROOT, 'dist/server.js')], {
      cwd: ROOT,
      stdio: ['ignore', appLog, appLog],
      env: {
        ...process.env,
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(appPort),
        REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: database.url,
        JWT_ACCESS_SECRET: randomBytes(32).toString('hex'),
        JWT_REFRESH_SECRET: randomBytes(32).toString('hex'),
        OPS_TOKEN: opsToken,
        TRUST_PROXY: '1',
        CORS_ORIGINS: 'https://app.example.com',
        LOG_LEVEL: 'warn',
        // The scan profile: limits stay on, high enough that scanners reach the handlers.
        ...Object.fromEntries(['API', 'LOGIN', 'LOGIN_ACCOUNT', 'REGISTER', 'REFRESH'].map((scope) => [`RATE_LIMIT_${scope}_MAX`, RAISED])),
      },
    });

    const tlsPort = (await Promise.all(TLS_PORTS.map(portFree))).map((free, i) => (free ? TLS_PORTS[i] : undefined)).find(Boolean);
    if (!tlsPort) throw new Error(`none of ports ${TLS_PORTS.join(', ')} is free on 127.0.0.1`);
    const ports = { http: await freePort(), https: tlsPort, upstream: appPort };
    nginx = new TestNginx(ports, '100000r/s', { authRate: '100000r/s' });
    // A certificate with the names the scan uses and 90 days to run, so that testssl's findings
    // about it are only those of a self-signed certificate.
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '90', '-subj', '/CN=localhost'],
        ...[
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          '-keyout',
          path.join(nginx.dir, 'tls/privkey.pem'),
          '-out',
          path.join(nginx.dir, 'tls/fullchain.pem'),
        ],
      ],
      { stdio: 'ignore' },
    );
    await nginx.start();
    const base = `https://127.0.0.1:${tlsPort}`;
    const deadline = Date.now() + 60_000;
    while ((await request(tlsPort, '/health/ready', { tls: true }).catch(() => ({ status: 0 }))).status !== 200) {
      if (app.exitCode !== null || Date.now() > deadline) throw new Error(`the app did not become ready:\n${readFileSync(path.join(work, 'app.log'), 'utf8')}`);
      await sleep(300);
    }

    // Fixtures through the API: an account and an item, whose id the scanners use.
    const email = `scan-${randomUUID().slice(0, 8)}@example.com`;
    const password = 'a long scan password 42';
    const registered = await request(tlsPort, '/api/v1/auth/register', { tls: true, method: 'POST', body: { email, password } });
    const token = (JSON.parse(registered.text) as { accessToken: string }).accessToken;
    const created = await request(tlsPort, '/api/v1/items', {
      tls: true,
      method: 'POST',
      body: { name: 'scan item', price: 1.5, tags: ['scan'] },
      headers: { authorization: `Bearer ${token}` },
    });
    const itemId = (JSON.parse(created.text) as { item: { id: string } }).item.id;

    void (async () => {
      while (probe.running) {
        const status = await request(tlsPort, '/health', { tls: true, localAddress: PROBE_ADDRESS }).then(
          (r) => r.status,
          () => 0,
        );
        probe.total++;
        if (status === 200) probe.ok++;
        await sleep(250);
      }
    })();

    /** Requests the app answered, by "METHOD route status", from its own metrics. */
    const answered = async () => {
      const counts = new Map<string, number>();
      const { text } = await request(appPort, '/metrics', { headers: { authorization: `Bearer ${opsToken}` } });
      for (const m of text.matchAll(/^http_request_duration_seconds_count\{(.*)\} (\d+)$/gm)) {
        const labels = new Map([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1]!, l[2]!]));
        counts.set(`${labels.get('method')} ${labels.get('route')} ${labels.get('status_code')}`, Number(m[2]));
      }
      return counts;
    };

    /** Runs one tool and adds what the app and nginx saw meanwhile: no 5xx, and each route in `reach` answered. */
    const step = async (tool: string, reach: string[], scan: () => Promise<[boolean, string]>) => {
      if (!only.includes(tool)) return;
      const before = await answered();
      const logged = nginx!.accessLog().length;
      const probed = { ok: probe.ok, total: probe.total };
      const begun = Date.now();
      let [ok, figures] = await scan();
      figures = `${Math.round((Date.now() - begun) / 1000)} s; ${figures}`;
      const byRoute = new Map<string, number>();
      let total = 0;
      let errors = 0;
      for (const [key, count] of await answered()) {
        const delta = count - (before.get(key) ?? 0);
        if (delta === 0) continue;
        const route = key.slice(0, key.lastIndexOf(' '));
        byRoute.set(route, (byRoute.get(route) ?? 0) + delta);
        total += delta;
        if (Number(key.slice(key.lastIndexOf(' ') + 1)) >= 500) errors += delta;
      }
      const edgeErrors = nginx!
        .accessLog()
        .slice(logged)
        .filter((e) => Number(e.status) >= 500).length;
      const missed = reach.filter((route) => !byRoute.get(route));
      const routes = [...byRoute].sort((a, b) => b[1] - a[1]).map(([route, n]) => `${route} ${n}`);
      ok &&= errors === 0 && edgeErrors === 0 && missed.length === 0;
      figures += `; app answered ${total} (${routes.slice(0, 4).join(', ') || 'none'}${routes.length > 4 ? ', ...' : ''}), 5xx: app ${errors}, nginx ${edgeErrors}`;
      if (missed.length > 0) figures += `; never reached ${missed.join(', ')}`;
      report(tool, ok, `${figures}; /health probe ${probe.ok - probed.ok}/${probe.total - probed.total}`);
    };

    await step('testssl', [], async () => {
      const json = path.join(work, 'testssl.json');
      const r = await run(
        'testssl',
        ['--quiet', '--color', '0', '--warnings', 'batch', '--nodns', 'none', '--openssl-timeout', '10', '--jsonfile', json, `127.0.0.1:${tlsPort}`],
        600,
      );
      const entries = (r.code === 124 ? [] : JSON.parse(readFileSync(json, 'utf8'))) as { id: string; severity: string; finding: string }[];
      const severe = entries.filter((e) => ['MEDIUM', 'HIGH', 'CRITICAL'].includes(e.severity));
      const findings = severe.filter((e) => !(e.id in WAIVED_TLS));
      for (const f of findings) process.stdout.write(`testssl: ${f.severity} ${f.id}: ${f.finding}\n`);
      const count = (s: string) => entries.filter((e) => e.severity === s).length;
      const waived = severe.filter((e) => e.id in WAIVED_TLS).map((e) => `${e.id} ${e.severity} (${WAIVED_TLS[e.id]})`);
      const warnings = entries.filter((e) => e.severity === 'WARN').map((e) => e.id);
      return [
        entries.length > 50 && findings.length === 0,
        `${entries.length} checks: ${count('OK')} OK, ${count('INFO')} INFO, ${count('LOW')} LOW, ${findings.length} above LOW; waived ${waived.join(', ') || 'none'}; scanner warnings ${warnings.join(', ') || 'none'}`,
      ];
    });

    await step('nmap', ['GET /api/v1/items'], async () => {
      // Both ports named http, so that http-security-headers runs on them; the TLS one by its number.
      mkdirSync(path.join(work, 'nmap'));
      writeFileSync(path.join(work, 'nmap/nmap-services'), `http\t${ports.http}/tcp\t0.5\nhttp\t${ports.https}/tcp\t0.5\n`);
      const problems: string[] = [];
      let served = 0;
      for (const [urlPath, scripts] of [
        ['/api/v1/items', 'http-methods,http-security-headers'],
        ['/', 'http-methods'], // headers at / on port 80 would follow the redirect to port 443, which nothing listens on here
      ]) {
        const args = `http-methods.test-all=true,http-methods.retest=true,http-methods.url-path=${urlPath},http-security-headers.path=${urlPath}`;
        const r = await run(
          'nmap',
          ['-Pn', '-n', '--datadir', 'nmap', '-p', `${ports.http},${ports.https}`, '--script', scripts!, '--script-args', args, '127.0.0.1'],
          120,
        );
        process.stdout.write(r.out.replace(/^\|\s+Description:.*\n/gm, ''));
        // Each port's script output: the lines starting with | under its "PORT/tcp" line.
        const blocks = new Map<number, string>();
        let current = 0;
        for (const line of r.out.split('\n')) {
          const port = /^(\d+)\/tcp/.exec(line)?.[1];
          if (port) current = Number(port);
          else if (current && line.startsWith('|')) blocks.set(current, `${blocks.get(current) ?? ''}${line}\n`);
          else current = 0;
        }
        for (const [port, overTls] of [
          [ports.http, false],
          [ports.https, true],
        ] as const) {
          const block = blocks.get(port) ?? '';
          // A method outside GET, HEAD, POST and OPTIONS is a finding only when it was served (2xx).
          const statuses = [...block.matchAll(/^\|_?\s+([A-Z]+): HTTP\/1\.1 (\d{3})/gm)];
          if (!block.includes('http-methods:')) problems.push(`${port}${urlPath}: http-methods did not run`);
          for (const [, method, status] of statuses) {
            if (status!.startsWith('2')) served++;
            if (!['GET', 'HEAD', 'POST', 'OPTIONS'].includes(method!) && status!.startsWith('2')) problems.push(`${method} ${urlPath} served on ${port}`);
          }
          if (!scripts!.includes('headers')) continue;
          const expected = ['X-Frame-Options: DENY', 'X-Content-Type-Options: nosniff', "Content-Security-Policy: default-src 'none'"];
          if (overTls) expected.push('Strict-Transport-Security: max-age=31536000');
          for (const header of expected) if (!block.includes(`Header: ${header}`)) problems.push(`${port}${urlPath}: no ${header}`);
          if (!overTls && block.includes('Strict-Transport-Security')) problems.push(`${port}: Strict-Transport-Security over plain HTTP`);
        }
      }
      for (const p of problems) process.stdout.write(`nmap: ${p}\n`);
      return [
        problems.length === 0,
        `ports ${ports.http} (HTTP) and ${ports.https} (TLS), paths / and /api/v1/items: ${served} method answers 2xx, none outside GET/HEAD/POST/OPTIONS; security headers as documented (HSTS over TLS only); ${problems.length} problems`,
      ];
    });

    await step('sqlmap', ['GET /api/v1/items', 'GET /api/v1/items/:id', 'POST /api/v1/auth/login'], async () => {
      const common = [
        '--batch',
        '--level',
        '2',
        '--risk',
        '1',
        '--disable-coloring',
        '--flush-session',
        '--output-dir',
        path.join(work, 'sqlmap'),
        '--timeout',
        '10',
        '--retries',
        '1',
        '--threads',
        '4',
      ];
      const targets: [string, string[]][] = [
        ['items list', ['-u', `${base}/api/v1/items?sort=name&tag=scan&page=1&limit=10`]],
        ['item id', ['-u', `${base}/api/v1/items/${itemId}*`]],
        ['login body', ['-u', `${base}/api/v1/auth/login`, '--data', JSON.stringify({ email, password: 'a wrong password' }), '--ignore-code', '401']],
      ];
      const verdicts: string[] = [];
      let ok = true;
      for (const [name, args] of targets) {
        const r = await run('sqlmap', [...common, ...args], 300);
        const clean =
          r.out.includes('all tested parameters do not appear to be injectable') && !/identified the following injection point|is vulnerable/.test(r.out);
        const codes = /HTTP error codes detected during run:\n(.*)/.exec(r.out)?.[1] ?? 'none';
        if (!clean) process.stdout.write(r.out.split('\n').slice(-40).join('\n'));
        ok &&= clean;
        verdicts.push(`${name} ${clean ? 'not injectable' : 'INJECTABLE OR UNFINISHED'} (${codes})`);
      }
      return [ok, `level 2, risk 1: ${verdicts.join('; ')}`];
    });

    await step('wapiti', ['GET /api/v1/items', 'GET /api/v1/items/:id'], async () => {
      // An empty technology database: wapiti would otherwise try to download one while loading its
      // modules (wapp, which is not run). A 10 s timeout: blindsql counts a timed-out request as an
      // injection (it sends sleep(timeout + 1)), so a busy machine must not reach it by being slow.
      mkdirSync(path.join(work, 'wapiti'));
      writeFileSync(path.join(work, 'wapiti/apps.json'), '{}');
      const modules = 'sql,blindsql,exec,file,crlf,xss,methods';
      const seeds = [`${base}/api/v1/items?sort=name&tag=scan&page=1&limit=10`, `${base}/api/v1/items?tag=scan`, `${base}/api/v1/items/${itemId}`];
      const out = path.join(work, 'wapiti.json');
      const r = await run(
        'wapiti',
        [
          ...['-u', `${base}/api/v1/`, '--scope', 'folder', ...seeds.flatMap((s) => ['-s', s]), '-m', modules, '-d', '1', '--verify-ssl', '0', '-t', '10'],
          ...[
            '--flush-session',
            '--store-session',
            'wapiti',
            '--store-config',
            'wapiti',
            '--max-scan-time',
            '480',
            '--no-bugreport',
            '-v',
            '1',
            '-f',
            'json',
            '-o',
            out,
          ],
        ],
        600,
      );
      const result = r.code === 124 ? undefined : (JSON.parse(readFileSync(out, 'utf8')) as Record<'vulnerabilities' | 'anomalies', Record<string, unknown[]>>);
      const found = (kind: 'vulnerabilities' | 'anomalies') => Object.entries(result?.[kind] ?? {}).filter(([, list]) => list.length > 0);
      for (const [name, list] of [...found('vulnerabilities'), ...found('anomalies')]) process.stdout.write(`wapiti: ${name}: ${JSON.stringify(list)}\n`);
      const attacked = (r.out.match(/^\[\+\] GET /gm) ?? []).length;
      return [
        result !== undefined && found('vulnerabilities').length === 0 && found('anomalies').length === 0,
        `modules ${modules}, ${seeds.length} seed URLs, ${attacked} URL attacks: ${found('vulnerabilities').length} vulnerability kinds, ${found('anomalies').length} anomaly kinds (500s, timeouts)`,
      ];
    });

    await step('ffuf', ['GET (unmatched)'], async () => {
      // The contract: every path of the OpenAPI document, matched as the app routes (any case, one
      // optional trailing slash). nginx answers nothing else here but 404/403 and 400.
      const document = JSON.parse(readFileSync(path.join(ROOT, 'docs/openapi.json'), 'utf8')) as { paths: Record<string, unknown> };
      const segments = (p: string) =>
        p
          .toLowerCase()
          .replace(/(.)\/$/, '$1')
          .split('/');
      const templates = Object.keys(document.paths).map(segments);
      const inContract = (p: string) =>
        templates.some((t) => t.length === segments(p).length && t.every((s, i) => s === segments(p)[i] || (s.startsWith('{') && segments(p)[i] !== '')));
      const unexpected: string[] = [];
      const figures: string[] = [];
      const words = [
        ...new Set(
          WORDLISTS.flatMap((f) => readFileSync(f, 'utf8').split('\n'))
            .map((w) => w.trim())
            .filter(Boolean),
        ),
      ];
      const wordlist = path.join(work, 'words.txt');
      writeFileSync(wordlist, `${words.join('\n')}\n`);
      for (const root of ['/', '/api/v1/']) {
        const out = path.join(work, `ffuf${root.replaceAll('/', '-')}json`);
        const r = await run(
          'ffuf',
          ['-s', '-u', `${base}${root}FUZZ`, '-w', wordlist, '-mc', 'all', '-fc', '404,403', '-t', '10', '-maxtime', '240', '-of', 'json', '-o', out],
          300,
        );
        const results = r.code === 124 ? [] : (JSON.parse(readFileSync(out, 'utf8')) as { results: { status: number; url: string }[] }).results;
        const found = results.map((x) => ({ status: x.status, path: new URL(x.url).pathname }));
        for (const f of found) if (f.status !== 400 && !inContract(f.path)) unexpected.push(`${f.status} ${f.path}`);
        if (r.code === 124) unexpected.push(`${root}: ffuf did not finish`);
        figures.push(`${root}: answered ${[...new Set(found.map((f) => `${f.status} ${f.path}`))].join(', ') || 'nothing'}`);
      }
      for (const u of unexpected) process.stdout.write(`ffuf: outside the contract: ${u}\n`);
      return [
        unexpected.length === 0,
        `dirb's common.txt and big.txt (${words.length} words) under / and /api/v1/, every answer but 404/403: ${figures.join('; ')}; outside the contract: ${unexpected.join(', ') || 'none'}`,
      ];
    });

    probe.running = false;
    const ratio = probe.total === 0 ? 0 : probe.ok / probe.total;
    report(
      'probe',
      ratio >= 0.95,
      `GET /health from ${PROBE_ADDRESS} during the scans: ${probe.ok}/${probe.total} answered 200 (${(ratio * 100).toFixed(1)} %, at least 95 % required)`,
    );
  } finally {
    probe.running = false;
    await cleanup();
    process.stdout.write(`\n== scan summary (${Math.round((Date.now() - started) / 1000)} s)\n${lines.join('\n')}\n`);
  }
}

main().then(
  () => process.exit(failed ? 1 : 0),
  (err: unknown) => {
    process.stderr.write(`scan failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
