// Slow clients against the built server (dist/server.js), on a port reached without nginx and
// through the shipped nginx: headers or a body sent slower than the timeouts are cut off, the
// connections beyond the cap are closed and counted, and normal requests are served meanwhile.
// The timeouts are shortened (1 s for headers, 2 s for a request) so that this takes seconds; the
// shipped ones are 10 s and 30 s.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteRedisPrefix } from '../helpers/app';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { NGINX, TestNginx } from '../helpers/nginx';
import { clusterEnv, Pm2App, ROOT } from '../helpers/pm2';
import { sample } from '../helpers/prometheus';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, REDIS_URL, toolAvailable, uniqueSuffix } from '../helpers/services';

const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
/** Above the few hundred connections slowhttptest holds, so that only the timeouts act on it. */
const MAX_CONNECTIONS = 400;
/** Node checks for expired connections every 100 ms at these timeouts; the rest is a noisy machine's margin. */
const SLACK_MS = 1500;
const NODE_408 = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const SLOWHTTPTEST = toolAvailable(spawnSync('slowhttptest', ['-h']).error === undefined, 'slowhttptest (Debian package slowhttptest)');

/** dist/server.js in a process of its own, as `npm start` runs it. */
class ServerProcess {
  private output = '';
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {
    child.stdout!.on('data', (d) => (this.output += String(d)));
    child.stderr!.on('data', (d) => (this.output += String(d)));
  }

  static async start(env: Record<string, string>): Promise<ServerProcess> {
    const port = await freePort();
    const clean: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      // The test runner's own variables must not reach the server's configuration.
      if (v !== undefined && !/^(NODE_ENV|VITEST.*|CI|REDIS_URL|DATABASE_URL|CACHE_REDIS_URL|PORT)$/.test(k)) clean[k] = v;
    }
    const child = spawn(process.execPath, ['dist/server.js'], { cwd: ROOT, env: { ...clean, ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const server = new ServerProcess(child, port);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null) {
      if ((await get(port, '/health')).status === 200) return server;
      await sleep(200);
    }
    child.kill('SIGKILL');
    throw new Error(`the server did not start:\n${server.log()}`);
  }

  log(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }
}

interface Answer {
  status: number;
  ms: number;
  body: string;
}

/** One request on a connection of its own; status 0 when it failed or took longer than 2 s. */
function get(port: number, urlPath: string, options: { tls?: boolean; localAddress?: string } = {}): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve) => {
    const request = options.tls ? https.request : http.request;
    const req = request(
      { host: '127.0.0.1', port, path: urlPath, agent: false, localAddress: options.localAddress, rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started, body }));
        res.on('error', () => resolve({ status: 0, ms: Date.now() - started, body }));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve({ status: 0, ms: Date.now() - started, body: '' }));
    req.end();
  });
}

/** `probe` every `everyMs` until `during` settles: what a client that is not attacking sees meanwhile. */
async function probeWhile<T>(during: Promise<T>, probe: () => Promise<Answer>, everyMs = 200): Promise<{ result: T; answers: Answer[] }> {
  const answers: Answer[] = [];
  let done = false;
  const loop = (async () => {
    while (!done) {
      answers.push(await probe());
      await sleep(everyMs);
    }
  })();
  try {
    return { result: await during, answers };
  } finally {
    done = true;
    await loop;
  }
}

interface Exchange {
  /** Everything the server sent. */
  data: string;
  /** From connecting to the server closing the connection; Infinity if it was still open at `giveUpMs`. */
  closedAfterMs: number;
}

/**
 * A raw connection that sends `first`, then `chunk` every `everyMs` (never finishing), until the
 * server closes it.
 */
function trickle(port: number, first: string, chunk: string | undefined, everyMs = 200, giveUpMs = 10_000): Promise<Exchange> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let closedAfterMs = Infinity;
    const timer =
      chunk === undefined
        ? undefined
        : setInterval(() => {
            if (socket.writable) socket.write(chunk);
          }, everyMs);
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    socket.on('connect', () => {
      if (first) socket.write(first);
    });
    socket.on('data', (d) => (data += String(d)));
    socket.on('end', () => (closedAfterMs = Date.now() - started));
    socket.on('error', () => (closedAfterMs = Math.min(closedAfterMs, Date.now() - started)));
    socket.on('close', () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ data, closedAfterMs });
    });
  });
}

/** A connection that has been answered once and stays open, idle, as keep-alive clients (and nginx) keep them. */
function heldConnection(port: number): Promise<{ socket: net.Socket; answered: boolean; closedAfterMs: () => number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let closedAt = Infinity;
    socket.on('connect', () => socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('data', (d) => {
      data += String(d);
      if (data.endsWith('{"status":"pass"}')) resolve({ socket, answered: true, closedAfterMs: () => closedAt - started });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closedAt = Date.now();
      resolve({ socket, answered: false, closedAfterMs: () => closedAt - started });
    });
  });
}

/** The connections closed at the cap. */
const shed = (text: string) => sample(text, 'rampart_shed_total', { reason: 'max_connections' });

/** The server's own services: a database of this file's and a Redis key prefix of its own, or the embedded stand-ins. */
async function services(): Promise<{ env: Record<string, string>; release: () => Promise<void> }> {
  const db: TestDatabase | undefined = DATABASE_URL ? await createTestDatabase() : undefined;
  const prefix = `rampart:slow:${uniqueSuffix()}:`;
  return {
    env: { ...(REDIS_URL ? { REDIS_URL, REDIS_KEY_PREFIX: prefix } : {}), ...(db ? { DATABASE_URL: db.url } : {}) },
    release: async () => {
      if (REDIS_URL) await deleteRedisPrefix(REDIS_URL, prefix);
      await db?.drop();
    },
  };
}

describe('slow clients on a port without nginx', () => {
  let server: ServerProcess;
  let release: () => Promise<void>;

  beforeAll(async () => {
    const own = await services();
    release = own.release;
    server = await ServerProcess.start({
      ...own.env,
      HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      LOG_LEVEL: 'info', // the access log shows what the app made of the requests cut off
    });
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    await release?.();
  }, 30_000);

  it('cuts off slow headers and silent connections with 408 after the headers timeout, slow bodies after the request timeout, and serves everyone else meanwhile', async () => {
    const port = server.port;
    const attack = Promise.all([
      // Slowloris: a request line, then a header line every 200 ms, never the blank line.
      ...Array.from({ length: 20 }, () => trickle(port, 'GET /api/v1/items HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n')),
      // Connected, and nothing sent at all.
      ...Array.from({ length: 10 }, () => trickle(port, '', undefined)),
      // Complete headers, then a JSON body a byte every 200 ms.
      ...Array.from({ length: 20 }, () =>
        trickle(port, 'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":"', 'a'),
      ),
    ]);
    // A slow client within the bounds: the body arrives over 1.2 s of the 2 s allowed, and is answered.
    const body = JSON.stringify({ email: 'slow@example.com', password: 'not the password' });
    const patient = (async () => {
      const socket = net.connect(port, '127.0.0.1');
      let data = '';
      socket.on('data', (d) => (data += String(d)));
      await new Promise((r) => socket.once('connect', r));
      socket.write(
        `POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      for (const part of [body.slice(0, 10), body.slice(10, 30), body.slice(30)]) {
        await sleep(400);
        socket.write(part);
      }
      await new Promise((r) => socket.once('close', r));
      return data;
    })();
    const { result, answers } = await probeWhile(attack, async () => {
      const [health, items] = await Promise.all([get(port, '/health'), get(port, '/api/v1/items')]);
      return { status: Math.min(health.status, items.status), ms: Math.max(health.ms, items.ms), body: '' };
    });
    const [headers, silent, bodies] = [result.slice(0, 20), result.slice(20, 30), result.slice(30)];
    for (const { data, closedAfterMs } of [...headers, ...silent]) {
      expect(data).toBe(NODE_408);
      expect(closedAfterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
      expect(closedAfterMs).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS);
    }
    for (const { data, closedAfterMs } of bodies) {
      // Node's own answer, without a body: nothing of the app's (no envelope, no stack, no 500).
      expect(data).toBe(NODE_408);
      expect(closedAfterMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
      expect(closedAfterMs).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS);
    }
    expect(await patient).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
    const slowest = Math.max(...answers.map((a) => a.ms));
    console.log(
      `slow clients without nginx: ${answers.length} probes answered ${answers.filter((a) => a.status === 200).length} x 200 (slowest ${slowest} ms) while 50 slow connections were cut off`,
    );
    expect(answers.length).toBeGreaterThan(5);
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(slowest).toBeLessThan(1000);

    // The app saw the slow bodies (their headers were complete) and logged them as 408, never as a
    // failure of its own; the request metrics count them under 408.
    await sleep(200);
    const log = server.log();
    expect(log.split('\n').filter((l) => /request failed|uncaught|unhandled/.test(l))).toEqual([]);
    const cutOff = log.split('\n').filter((l) => l.includes('request completed') && l.includes('"url":"/api/v1/auth/login"') && l.includes('"status":408'));
    expect(cutOff).toHaveLength(20);
    const metrics = (await get(port, '/metrics')).body;
    expect(sample(metrics, 'http_request_duration_seconds_count', { method: 'POST', route: '(unmatched)', status_code: '408' })).toBe(20);
  }, 30_000);

  it('closes connections beyond MAX_CONNECTIONS at once and counts them, then serves again once connections are released', async () => {
    const port = server.port;
    const before = shed((await get(port, '/metrics')).body);
    expect(before).toBe(0); // present before anything was refused
    // Idle keep-alive connections count toward the cap: hold exactly MAX_CONNECTIONS of them.
    const held: Awaited<ReturnType<typeof heldConnection>>[] = [];
    while (held.length < MAX_CONNECTIONS) {
      held.push(...(await Promise.all(Array.from({ length: Math.min(50, MAX_CONNECTIONS - held.length) }, () => heldConnection(port)))));
    }
    try {
      expect(held.filter((h) => h.answered)).toHaveLength(MAX_CONNECTIONS);
      // Beyond the cap: accepted by the kernel, closed by Node before a byte is read or written.
      const refused = await Promise.all(Array.from({ length: 5 }, () => trickle(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', undefined, 200, 5000)));
      for (const { data, closedAfterMs } of refused) {
        expect(data).toBe('');
        expect(closedAfterMs).toBeLessThan(1000);
      }
      expect((await get(port, '/health')).status).toBe(0);
      // The held connections are still served (keep-alive, past the headers timeout).
      await sleep(HEADERS_TIMEOUT_MS + 200);
      expect(held.every((h) => h.closedAfterMs() === Infinity)).toBe(true);
    } finally {
      for (const h of held) h.socket.destroy();
    }
    await sleep(200);
    expect((await get(port, '/health')).status).toBe(200);
    expect(shed((await get(port, '/metrics')).body)).toBe(6); // the five and the health check
    const warnings = server.log().match(/connection limit reached; closing new connections.*/g) ?? [];
    expect(warnings).toHaveLength(1); // at most one every 10 s
    expect(warnings[0]).toContain(`"maxConnections":${MAX_CONNECTIONS}`);
  }, 60_000);

  describe.skipIf(!SLOWHTTPTEST || !NGINX)(
    `slowhttptest (slowloris and slow body), directly and through the shipped nginx${!SLOWHTTPTEST ? ' [skipped: slowhttptest not installed (Debian package slowhttptest)]' : !NGINX ? ' [skipped: nginx not installed (Debian package nginx)]' : ''}`,
    () => {
      let nginx: TestNginx;
      let work: string;

      beforeAll(async () => {
        work = mkdtempSync(path.join(os.tmpdir(), 'rampart-slowhttptest-'));
        nginx = new TestNginx({ http: await freePort(), https: await freePort(), upstream: server.port });
        await nginx.start();
      });

      afterAll(async () => {
        await nginx?.stop();
        rmSync(work, { recursive: true, force: true });
      });

      interface Report {
        /** Per second: connections closed, pending, connected, and whether slowhttptest's probe was answered. */
        rows: { seconds: number; closed: number; pending: number; connected: number; available: boolean }[];
        exitStatus: string;
        output: string;
      }

      /** slowhttptest bounded in time and connections, on loopback; its report, from its CSV and its last lines. */
      async function slowhttptest(mode: '-H' | '-B', url: string, seconds: number): Promise<Report> {
        const prefix = path.join(work, `${mode.slice(1)}-${randomUUID().slice(0, 8)}`);
        const args = [mode, '-c', '300', '-r', '100', '-i', '1', '-l', String(seconds), '-p', '2', '-g', '-o', prefix, '-u', url];
        if (mode === '-B') args.push('-s', '8192', '-f', 'application/json');
        const child = spawn('slowhttptest', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += String(d)));
        child.stderr.on('data', (d) => (output += String(d)));
        const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 20) * 1000);
        await new Promise((r) => child.once('exit', r));
        clearTimeout(killer);
        // eslint-disable-next-line no-control-regex -- its output is coloured with ANSI escapes
        const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
        const rows = readFileSync(`${prefix}.csv`, 'utf8')
          .trim()
          .split('\n')
          .slice(1)
          .map((line) => {
            // The last column is the number of connections while the probe was answered, 0 when it was not.
            const [s, closed, pending, connected, available] = line.split(',').map(Number);
            return { seconds: s!, closed: closed!, pending: pending!, connected: connected!, available: available! > 0 };
          });
        return { rows, exitStatus: /Exit status:\s*(.+)/.exec(plain)?.[1]?.trim() ?? '', output: plain };
      }

      const summary = (r: Report) => {
        const last = r.rows.at(-1)!;
        return `${r.rows.length} rows, last: ${last.closed} closed, ${last.connected} connected; service available every second: ${r.rows.every((x) => x.available)}; exit: ${r.exitStatus}`;
      };

      /** Not DoSed, by slowhttptest's own account and by a probe of ours from another address. */
      function expectAvailable(name: string, report: Report, answers: Answer[]): void {
        const ok = answers.filter((a) => a.status === 200);
        const slowest = Math.max(...ok.map((a) => a.ms));
        console.log(`${name}: slowhttptest ${summary(report)}; our probe ${ok.length}/${answers.length} x 200, slowest ${slowest} ms`);
        expect(report.rows.length, report.output).toBeGreaterThan(3);
        expect(
          report.rows.filter((r) => !r.available),
          report.output,
        ).toEqual([]);
        expect(report.output).not.toMatch(/service available:\s*NO/);
        expect(answers.length).toBeGreaterThan(10);
        expect(answers.length - ok.length).toBeLessThanOrEqual(1);
        expect(slowest).toBeLessThan(2000);
      }

      const direct = () => get(server.port, '/health', { localAddress: '127.0.0.2' });
      // From another address than the attack's (127.0.0.1), which nginx's per-address connection limit holds to 100.
      const throughNginx = () => get(nginx.ports.https, '/health', { tls: true, localAddress: '127.0.0.2' });

      it('slowloris (-H) directly: the server cuts every connection at the headers timeout, and stays available', async () => {
        const { result, answers } = await probeWhile(slowhttptest('-H', `http://127.0.0.1:${server.port}/health`, 10), direct);
        expectAvailable('slowhttptest -H, directly', result, answers);
        // Every connection was closed by the server before the test's time ran out.
        expect(result.exitStatus, result.output).toMatch(/No open connections left/);
      }, 40_000);

      it('slow body (-B) directly: the server cuts every connection at the request timeout, and stays available', async () => {
        const { result, answers } = await probeWhile(slowhttptest('-B', `http://127.0.0.1:${server.port}/api/v1/auth/login`, 10), direct);
        expectAvailable('slowhttptest -B, directly', result, answers);
        expect(result.exitStatus, result.output).toMatch(/No open connections left/);
      }, 40_000);

      it('slowloris (-H) through nginx: nginx holds them and closes them at its client_header_timeout (10 s), and stays available', async () => {
        const { result, answers } = await probeWhile(slowhttptest('-H', `https://127.0.0.1:${nginx.ports.https}/health`, 12), throughNginx);
        expectAvailable('slowhttptest -H, through nginx', result, answers);
        expect(result.rows.at(-1)!.closed, result.output).toBeGreaterThan(0);
      }, 40_000);

      it('slow body (-B) through nginx: nginx buffers the bodies, so none reaches the app, and stays available', async () => {
        const marker = `slow-body-${randomUUID().slice(0, 8)}`;
        const { result, answers } = await probeWhile(slowhttptest('-B', `https://127.0.0.1:${nginx.ports.https}/api/v1/items?${marker}`, 12), throughNginx);
        expectAvailable('slowhttptest -B, through nginx', result, answers);
        // slowhttptest's probe (a GET) is forwarded; none of its slow POSTs is.
        const forwarded = server
          .log()
          .split('\n')
          .filter((l) => l.includes(marker));
        expect(forwarded.length).toBeGreaterThan(0);
        expect(forwarded.filter((l) => !l.includes('"method":"GET"'))).toEqual([]);
      }, 40_000);
    },
  );
});

describe.skipIf(!DATABASE_URL || !REDIS_URL)(
  `the connection cap under PM2's cluster mode${DATABASE_URL && REDIS_URL ? '' : ' [skipped: needs DATABASE_URL and REDIS_URL]'}`,
  () => {
    let db: TestDatabase;
    let app: Pm2App;
    let port: number;
    const prefix = `rampart:slowpm2:${uniqueSuffix()}:`;

    beforeAll(async () => {
      db = await createTestDatabase();
      port = await freePort();
      app = new Pm2App(`rampart-cap-${randomUUID().slice(0, 8)}`, clusterEnv(port, REDIS_URL!, db.url, { REDIS_KEY_PREFIX: prefix, MAX_CONNECTIONS: '5' }));
      app.start();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        if ((await get(port, '/health/ready')).status === 200 && app.instances().filter((i) => i.status === 'online').length === 2) break;
        await sleep(300);
      }
    }, 90_000);

    afterAll(async () => {
      app?.kill();
      await deleteRedisPrefix(REDIS_URL!, prefix);
      await db?.drop();
    }, 60_000);

    it('a full worker closes the connection at once and counts it, instead of handing it back to the primary over and over', async () => {
      // Two workers of five connections each: the primary hands connections out in turn, and a
      // worker at its cap closes what it is handed (without dropMaxConnection the worker would
      // refuse it, the primary would offer it again, and the connection would never be closed).
      const held: Awaited<ReturnType<typeof heldConnection>>[] = [];
      for (let i = 0; i < 16; i++) held.push(await heldConnection(port));
      try {
        const answered = held.filter((h) => h.answered).length;
        const closed = held.filter((h) => !h.answered);
        console.log(`PM2 cluster, 2 workers x MAX_CONNECTIONS=5: ${answered} of 16 connections served, ${closed.length} closed at once`);
        expect(answered).toBeGreaterThanOrEqual(5);
        expect(answered).toBeLessThanOrEqual(10);
        for (const h of closed) expect(h.closedAfterMs()).toBeLessThan(1000);
        // Released: the metric, merged across workers, has every one of them.
        for (const h of held) h.socket.destroy();
        await sleep(300);
        const text = (await get(port, '/metrics')).body;
        expect(shed(text)).toBe(closed.length);
      } finally {
        for (const h of held) h.socket.destroy();
      }
    }, 60_000);
  },
);
