// A throw-away redis-server on a free loopback port, for tests that stop and restart Redis
// (never the shared one on 6379). Stopped by the PID we started, nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RedisTarget } from '../../src/config';
import { toolAvailable } from './services';

export const HAS_REDIS_SERVER = toolAvailable(spawnSync('redis-server', ['--version']).status === 0, 'redis-server');
export const NO_REDIS_SERVER_REASON = 'skipped: redis-server binary not installed';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
  });
}

export class TestRedisServer {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(): Promise<TestRedisServer> {
    const server = new TestRedisServer(await freePort());
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    this.child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 100; i++) {
      if (await answers(this.port)) return;
      await sleep(50);
    }
    throw new Error(`redis-server on port ${this.port} did not start`);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }
}

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
export async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  };
}

/** A one-server Redis target, as the configuration builds it from a redis:// URL. */
export function serverTarget(url: string): RedisTarget {
  return { kind: 'server', url, tls: url.startsWith('rediss://') };
}

/**
 * A redis-server started with any arguments (TLS only, a replica, a sentinel), ready once its log
 * says so. Stopped, paused and resumed by the PID this started; the log is kept for failures.
 */
export class RedisProcess {
  private log = '';
  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
  }

  static async start(args: readonly string[], ready = /Ready to accept connections|Sentinel ID is/, timeoutMs = 10_000): Promise<RedisProcess> {
    // A sentinel must keep its configuration file (it rewrites it); a data server keeps nothing,
    // and a replica's synchronisation file goes to a directory of its own, never the working one.
    const dir = mkdtempSync(path.join(tmpdir(), 'rampart-redis-'));
    const persistence = args.includes('--sentinel') ? [] : ['--save', '', '--appendonly', 'no', '--dir', dir];
    const child = spawn('redis-server', [...args, ...persistence, '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const server = new RedisProcess(child, dir);
    const deadline = Date.now() + timeoutMs;
    while (!ready.test(server.log)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        await server.stop();
        throw new Error(`redis-server ${args.join(' ')} did not start:\n${server.log.slice(-2000)}`);
      }
      await sleep(25);
    }
    return server;
  }

  get output(): string {
    return this.log;
  }

  /** SIGSTOP: the process keeps its sockets but answers nothing (a hung server). */
  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
