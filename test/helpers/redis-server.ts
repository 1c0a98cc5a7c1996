// A throw-away redis-server on a free loopback port, for tests that stop and restart Redis
// (never the shared one on 6379). Stopped by the PID we started, nothing else.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
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

export const HAS_REDIS_CLI = toolAvailable(spawnSync('redis-cli', ['--version']).status === 0, 'redis-cli');
export const HAS_REDIS_CLUSTER_TOOLS = HAS_REDIS_SERVER && HAS_REDIS_CLI;
export const NO_REDIS_CLUSTER_TOOLS_REASON = `skipped: ${HAS_REDIS_SERVER ? 'redis-cli' : 'redis-server'} binary not installed`;

export interface ClusterNode {
  port: number;
  process: RedisProcess;
}

/**
 * One command (INFO, CLUSTER NODES, ...) to one node on a connection of its own, closed afterwards;
 * over TLS verified against the CA (PEM text) when given.
 */
async function nodeCommand(tlsCa: string | undefined, port: number, command: string, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis(port, '127.0.0.1', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    commandTimeout: 2000,
    ...(tlsCa === undefined ? {} : { tls: { ca: tlsCa } }),
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(command, ...args);
  } finally {
    client.disconnect();
  }
}

/**
 * A Redis Cluster of three masters with one replica each, from Debian's redis-server: every node
 * on free ports (client and cluster bus) with its own directory, joined by `redis-cli --cluster
 * create`, ready once every node says cluster_state:ok and every replica is in sync. Stopped,
 * paused and killed by the PIDs this started.
 */
/** Files of a server certificate, its key and the CA it chains to (PEM). */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

export class TestRedisCluster {
  private readonly tlsCa: string | undefined;
  private constructor(
    readonly nodes: ClusterNode[],
    readonly tls: TlsFiles | undefined,
  ) {
    this.tlsCa = tls && readFileSync(tls.ca, 'utf8');
  }

  /**
   * A node timeout of 1.5 s makes a failover take a few seconds instead of the default 15. With
   * `tls`, every node speaks TLS only, to clients, to its replicas and on the cluster bus.
   */
  static async start({
    nodeTimeoutMs = 1500,
    timeoutMs = 40_000,
    tls,
  }: { nodeTimeoutMs?: number; timeoutMs?: number; tls?: TlsFiles } = {}): Promise<TestRedisCluster> {
    const deadline = Date.now() + timeoutMs;
    const nodes: ClusterNode[] = [];
    const cluster = new TestRedisCluster(nodes, tls);
    try {
      for (let i = 0; i < 6; i++) {
        const port = await freePort();
        const busPort = await freePort();
        const listen = tls
          ? ['--port', '0', '--tls-port', String(port), '--tls-cluster', 'yes', '--tls-replication', 'yes', '--tls-auth-clients', 'no']
          : ['--port', String(port)];
        const certificates = tls ? ['--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca] : [];
        const args = [...listen, ...certificates, '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort)];
        const process = await RedisProcess.start([
          ...args,
          // Relative to the node's own --dir (set by RedisProcess).
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          String(nodeTimeoutMs),
          // Slots of a failed master are refused; the others keep being served meanwhile.
          '--cluster-require-full-coverage',
          'no',
        ]);
        nodes.push({ port, process });
      }
      const cliTls = tls ? ['--tls', '--cacert', tls.ca] : [];
      const create = spawn(
        'redis-cli',
        [...cliTls, '--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let output = '';
      create.stdout.on('data', (d: Buffer) => (output += d.toString()));
      create.stderr.on('data', (d: Buffer) => (output += d.toString()));
      const code = await Promise.race([
        new Promise<number | null>((resolve) => create.once('exit', resolve)),
        sleep(Math.max(1000, deadline - Date.now())).then(() => 'timeout' as const),
      ]);
      if (code !== 0) {
        create.kill('SIGKILL');
        throw new Error(`redis-cli --cluster create failed (${code}):\n${output.slice(-2000)}`);
      }
      await cluster.waitUntilHealthy(deadline);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Every node reports cluster_state:ok, and each master has a replica in sync. */
  async waitUntilHealthy(deadline: number, nodes: readonly ClusterNode[] = this.nodes): Promise<void> {
    for (;;) {
      const states = await Promise.all(
        nodes.map(async (n) => {
          const info = String(await this.command(n.port, 'CLUSTER', 'INFO').catch(() => ''));
          const replication = String(await this.command(n.port, 'INFO', 'replication').catch(() => ''));
          const ok = info.includes('cluster_state:ok');
          return replication.includes('role:master') ? ok && /connected_slaves:[1-9]/.test(replication) : ok && replication.includes('master_link_status:up');
        }),
      );
      if (states.every(Boolean)) return;
      if (Date.now() > deadline) throw new Error('the cluster did not become healthy in time');
      await sleep(100);
    }
  }

  /** redis-cluster://127.0.0.1:p1,127.0.0.1:p2,... (every node a seed). */
  get url(): string {
    return `redis-cluster://${this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}${this.tls ? '?tls=true' : ''}`;
  }

  /** A command to one node, on a connection of its own (over TLS for a TLS cluster). */
  command(port: number, command: string, ...args: (string | number)[]): Promise<unknown> {
    return nodeCommand(this.tlsCa, port, command, ...args);
  }

  node(port: number): ClusterNode {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on port ${port}`);
    return node;
  }

  /** The masters and their replicas as the live nodes see them (CLUSTER NODES of any node). */
  async topology(): Promise<{ port: number; replicas: number[] }[]> {
    for (const n of this.nodes) {
      const text = await this.command(n.port, 'CLUSTER', 'NODES').catch(() => undefined);
      if (typeof text !== 'string') continue;
      const lines = text
        .trim()
        .split('\n')
        .map((line) => line.split(' '));
      const portOf = (address: string) => Number(/:(\d+)@/.exec(address)?.[1]);
      const masters = lines.filter((l) => l[2]!.includes('master') && !l[2]!.includes('fail'));
      return masters.map((m) => ({
        port: portOf(m[1]!),
        replicas: lines.filter((l) => l[3] === m[0] && !l[2]!.includes('fail')).map((l) => portOf(l[1]!)),
      }));
    }
    throw new Error('no node answers');
  }

  /** The port of the master that serves a key's slot. */
  async masterOf(key: string): Promise<number> {
    for (const n of this.nodes) {
      const slot = await this.command(n.port, 'CLUSTER', 'KEYSLOT', key).catch(() => undefined);
      if (typeof slot !== 'number') continue;
      const ranges = (await this.command(n.port, 'CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (range) return range[2][1];
    }
    throw new Error(`no master for ${key}`);
  }

  /** CROSSSLOT errors every live node has answered (INFO errorstats). */
  async crossSlotErrors(): Promise<number> {
    let total = 0;
    for (const n of this.nodes) {
      const info = String(await this.command(n.port, 'INFO', 'errorstats').catch(() => ''));
      total += Number(/errorstat_CROSSSLOT:count=(\d+)/.exec(info)?.[1] ?? 0);
    }
    return total;
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process.stop()));
  }
}
