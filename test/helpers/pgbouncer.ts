// A throw-away PgBouncer (Debian's package) in transaction pooling, on a free loopback port, in
// front of the PostgreSQL of DATABASE_URL: its own ini and user list in a temporary directory,
// stopped by the PID we started. It can be paused (SIGSTOP: accepts nothing, answers nothing) to
// play a database that hangs.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from './redis-server';
import { toolAvailable } from './services';

const BINARY = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p)) ?? 'pgbouncer';
export const HAS_PGBOUNCER = toolAvailable(spawnSync(BINARY, ['--version']).status === 0, 'pgbouncer');
export const NO_PGBOUNCER_REASON = 'skipped: pgbouncer not installed (Debian package pgbouncer)';

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class TestPgBouncer {
  private child: ChildProcess | undefined;
  /** What PgBouncer wrote (it logs to stderr when no log file is set): for a failing test's message. */
  output = '';

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly upstream: URL,
  ) {}

  /** A PgBouncer in front of the server of upstreamUrl, for every database on it (`*`). */
  static async create(upstreamUrl: string, settings: Record<string, string | number> = {}): Promise<TestPgBouncer> {
    const upstream = new URL(upstreamUrl);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'rampart-pgbouncer-'));
    const bouncer = new TestPgBouncer(await freePort(), dir, upstream);
    const user = decodeURIComponent(upstream.username || 'postgres');
    const ini = {
      listen_addr: '127.0.0.1',
      listen_port: bouncer.port,
      unix_socket_dir: '',
      auth_type: 'trust',
      auth_file: path.join(dir, 'userlist.txt'),
      pool_mode: 'transaction',
      default_pool_size: 10,
      max_client_conn: 200,
      admin_users: user,
      ...settings,
    };
    const lines = [
      '[databases]',
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      '[pgbouncer]',
      ...Object.entries(ini).map(([k, v]) => `${k} = ${v}`),
    ];
    await writeFile(path.join(dir, 'pgbouncer.ini'), `${lines.join('\n')}\n`);
    await writeFile(path.join(dir, 'userlist.txt'), `"${user}" "${decodeURIComponent(upstream.password)}"\n`);
    // PgBouncer refuses to run as root; as root it is told to become nobody, who must read these.
    await chmod(dir, 0o755);
    await Promise.all(['pgbouncer.ini', 'userlist.txt'].map((f) => chmod(path.join(dir, f), 0o644)));
    await bouncer.start();
    return bouncer;
  }

  /** The URL of a database on the upstream server, through PgBouncer. */
  url(database = this.upstream.pathname.slice(1)): string {
    const url = new URL(this.upstream.toString());
    url.port = String(this.port);
    url.hostname = '127.0.0.1';
    url.pathname = `/${database}`;
    return url.toString();
  }

  async start(): Promise<void> {
    const asRoot = process.getuid?.() === 0 ? ['-u', 'nobody'] : [];
    const child = spawn(BINARY, [...asRoot, path.join(this.dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    for (let i = 0; i < 100; i++) {
      if (child.exitCode !== null) break;
      if (await accepts(this.port)) return;
      await sleep(50);
    }
    await this.stop();
    throw new Error(`pgbouncer on port ${this.port} did not start:\n${this.output}`);
  }

  /** A command on the admin console (the pseudo-database pgbouncer). */
  async admin(command: string): Promise<void> {
    const client = new pg.Client({ connectionString: this.url('pgbouncer') });
    await client.connect();
    try {
      await client.query(command);
    } finally {
      await client.end();
    }
  }

  /** Freezes the process: connections are neither accepted nor answered. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // a paused process would not act on the signal below until resumed
    child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  /** Stops the process and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
