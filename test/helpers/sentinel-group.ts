// A real Sentinel group for failover tests: a master, two replicas and three sentinels from
// Debian's redis-server on free loopback ports, in a temporary directory, stopped by PID.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { until } from './until';
import Redis from 'ioredis';
import { freePort, RedisProcess } from './redis-server';
import { TcpProxy } from './tcp-proxy';

export const MASTER_NAME = 'rampart';
/**
 * How long a sentinel waits for the master's reply before it deems it down. Sentinels ping every
 * second at most, and one that learns of a failover from another sentinel resets its link to the
 * new master and counts from then: with 1000 ms, its first reply often came a few ms too late
 * and it started a second failover (2 runs in 8 of the load test). 3000 ms leaves two pings.
 */
const DOWN_AFTER_MS = 3000;
/** The sentinel log events that tell the story of a failover (see events()). */
const SENTINEL_EVENT =
  /^[+-](sdown|odown|new-epoch|try-failover|vote-for-leader|elected-leader|selected-slave|promoted-slave|switch-master|failover-end|failover-abort|tilt|convert-to-slave|fix-slave-config|slave-reconf-sent|slave-reconf-done|reboot)\b/;

export interface SentinelGroupOptions {
  /**
   * The replicas replicate through a proxy the test can hold (a lagging link): what the master
   * acknowledges meanwhile is lost when it dies. The sentinels would repoint such replicas at the
   * master itself after failover-timeout (+fix-slave-config), so that is raised to 2 minutes.
   */
  replicationThroughProxy?: boolean;
}

export class SentinelGroup {
  /** A connection to the first sentinel, for the test's own questions. */
  readonly sentinel: Redis;

  private constructor(
    private readonly dir: string,
    readonly master: RedisProcess,
    readonly masterPort: number,
    readonly sentinelPorts: number[],
    private readonly processes: RedisProcess[],
    private readonly replication: TcpProxy | undefined,
  ) {
    this.sentinel = new Redis(sentinelPorts[0]!, '127.0.0.1', { maxRetriesPerRequest: 0 });
  }

  /**
   * Starts the group and waits until the sentinels know both replicas and each other (hello
   * messages every 2 s): before that a failover cannot happen.
   */
  static async start(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
    const dir = mkdtempSync(path.join(tmpdir(), 'rampart-sentinel-'));
    const processes: RedisProcess[] = [];
    let replication: TcpProxy | undefined;
    try {
      const masterPort = await freePort();
      const master = await RedisProcess.start(['--port', String(masterPort), '--bind', '127.0.0.1']);
      processes.push(master);
      if (options.replicationThroughProxy) {
        replication = await TcpProxy.create({ host: '127.0.0.1', port: masterPort });
        await replication.start();
      }
      for (let i = 0; i < 2; i++) {
        const port = await freePort();
        processes.push(
          await RedisProcess.start(
            ['--port', String(port), '--bind', '127.0.0.1', '--replicaof', '127.0.0.1', String(replication?.port ?? masterPort)],
            /MASTER <-> REPLICA sync: (Finished with success|Master accepted a Partial)/,
          ),
        );
      }
      const sentinelPorts: number[] = [];
      for (let i = 0; i < 3; i++) {
        const port = await freePort();
        const conf = path.join(dir, `sentinel-${port}.conf`);
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${dir}`,
            `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
            `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
            `sentinel failover-timeout ${MASTER_NAME} ${options.replicationThroughProxy ? 120_000 : 10_000}`,
            `sentinel parallel-syncs ${MASTER_NAME} 2`,
            '',
          ].join('\n'),
        );
        processes.push(await RedisProcess.start([conf, '--sentinel'], /\+monitor master/));
        sentinelPorts.push(port);
      }
      const group = new SentinelGroup(dir, master, masterPort, sentinelPorts, processes, replication);
      await until('the sentinels to see two replicas and each other', 30_000, async () => {
        const replicas = (await group.sentinel.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as unknown[];
        const others = (await group.sentinel.call('SENTINEL', 'SENTINELS', MASTER_NAME)) as unknown[];
        return replicas.length === 2 && others.length === 2 ? true : undefined;
      });
      return group;
    } catch (err) {
      await replication?.stop();
      for (const p of processes) await p.stop();
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** The REDIS_URL of the group: every sentinel, then the master's name. */
  get url(): string {
    return `redis-sentinel://${this.sentinelList}/${MASTER_NAME}`;
  }

  get sentinelList(): string {
    return this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',');
  }

  /** host:port of the master as the first sentinel reports it now. */
  async masterAddress(): Promise<string> {
    const [host, port] = (await this.sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as [string, string];
    return `${host}:${port}`;
  }

  /** The replication proxy stops passing on the master's stream: the replicas fall behind. */
  holdReplication(): void {
    if (!this.replication) throw new Error('the group was started without replicationThroughProxy');
    this.replication.hold();
  }

  /** SIGKILLs the master; what the replication proxy held back is dropped with it. */
  async killMaster(): Promise<void> {
    await this.master.stop();
    await this.replication?.stop();
  }

  /**
   * Every event the sentinels logged (+sdown, +odown, elections, promotions, +switch-master,
   * TILT, replicas repointed), in order of time (Date.now(), as the log's local time says), with
   * the port of the sentinel that logged it.
   */
  private sentinelEvents(): { atWallMs: number; sentinel: number; event: string }[] {
    const events: { atWallMs: number; sentinel: number; event: string }[] = [];
    // The sentinels are the last processes started, in the order of their ports.
    this.processes.slice(-this.sentinelPorts.length).forEach((p, index) => {
      for (const line of p.output.split('\n')) {
        // "4242:X 04 Dec 2026 18:30:00.123 # +switch-master rampart 127.0.0.1 4001 127.0.0.1 4002"
        const m = /^\d+:X (\d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2}\.\d{3}) . ([+-][\w-]+.*)$/.exec(line);
        if (m && SENTINEL_EVENT.test(m[2]!)) events.push({ atWallMs: Date.parse(m[1]!), sentinel: this.sentinelPorts[index]!, event: m[2]! });
      }
    });
    return events.sort((a, b) => a.atWallMs - b.atWallMs);
  }

  /** The sentinels' events, each timed in ms from `origin` (a Date.now()): how many failovers, and when. */
  events(origin: number): string[] {
    return this.sentinelEvents().map((e) => `${String(Math.round(e.atWallMs - origin)).padStart(7)} ms  sentinel :${e.sentinel} ${e.event}`);
  }

  /**
   * The promotions the sentinels made, in order: the new master and when it was first announced
   * (+promoted-slave from the leader, or a +switch-master).
   */
  promotions(): { to: string; atWallMs: number }[] {
    const promotions: { to: string; atWallMs: number }[] = [];
    for (const e of this.sentinelEvents()) {
      const m = /^\+promoted-slave slave (\S+) |^\+switch-master \S+ \S+ \S+ (\S+) (\d+)$/.exec(e.event);
      const to = m && (m[1] ?? `${m[2]!}:${m[3]!}`);
      // Announcements of the same master one after the other are one promotion.
      if (to && promotions.at(-1)?.to !== to) promotions.push({ to, atWallMs: e.atWallMs });
    }
    return promotions;
  }

  async stop(): Promise<void> {
    this.sentinel.disconnect();
    await this.replication?.stop();
    for (const p of this.processes) await p.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
