// A Redis Cluster failover under load (test/helpers/failover-load.ts): the built app in PM2
// cluster mode (2 workers) sharing one Cluster (three masters, three replicas from Debian's
// redis-server, cluster-node-timeout 1.5 s) and the real PostgreSQL, under autocannon and a hammer
// of wrong passwords for one account. The master killed (SIGKILL, halfway to the account's login
// limit) is the one holding that account's login counter; the load's sessions are chosen so that
// the authenticated reads', half the refresh chains' and some of the revoked ones' live on it too.
// Run twice: with the replicas in step, and with the victim's replication held back before the
// kill so that hits are really lost. A Cluster replica replicates from the address its master
// announces, which the clients learn too: the victim announces a proxy's port, its replica
// replicates through the proxy, and the app reaches the victim directly through
// REDIS_CLUSTER_NAT_MAP (announced address = real one), so holding the proxy holds replication
// only.
import keySlot from 'cluster-key-slot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SESSION_KEYS } from '../../src/lib/key-layout';
import { emailKey } from '../../src/middleware/rate-limit';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { failoverUnderLoad, newAccount, startLoadApp, type Session, type SessionPlan } from '../helpers/failover-load';
import type { Pm2App } from '../helpers/pm2';
import { freePort, HAS_REDIS_CLUSTER_TOOLS, NO_REDIS_CLUSTER_TOOLS_REASON, TestRedisCluster } from '../helpers/redis-server';
import { DATABASE_URL, NO_DATABASE_REASON } from '../helpers/services';
import { TcpProxy } from '../helpers/tcp-proxy';
import { until } from '../helpers/until';

const LOGIN_LIMIT = 40;
const KILL_AT = 20;
// A Cluster promotes a second or so later than the Sentinel group: the load runs longer, so that
// it outlasts the promotion by the recovery bound.
const LOAD_SECONDS = 22;
// With replication held: hits the master acknowledges alone before it dies.
const HELD_HITS = 8;
const KEY_PREFIX = 'rampart:'; // REDIS_KEY_PREFIX's default, which the app runs with here

const CAN_RUN = HAS_REDIS_CLUSTER_TOOLS && Boolean(DATABASE_URL);
const REASON = HAS_REDIS_CLUSTER_TOOLS ? NO_DATABASE_REASON : NO_REDIS_CLUSTER_TOOLS_REASON;

/** A token's payload, not verified: the test was issued it. */
const claimsOf = (accessToken: string) => JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string; sub: string };

const SCENARIOS = [
  { name: 'replicas in step', holdReplication: false },
  { name: `the victim's replication held back for the last ${HELD_HITS}+ attempts before the kill`, holdReplication: true },
];

describe.skipIf(!CAN_RUN).each(SCENARIOS)(`Redis Cluster failover under load, PM2 cluster of 2 workers${CAN_RUN ? '' : ` [${REASON}]`}: $name`, (scenario) => {
  let cluster: TestRedisCluster | undefined;
  let db: TestDatabase | undefined;
  let app: Pm2App | undefined;
  let replication: TcpProxy | undefined;
  let port: number;
  let victim: number;
  /** The victim as the Cluster announces it: its own port, or the replication proxy's. */
  let victimAnnounced: number;
  let target: string;
  let counterKey: string;

  beforeAll(async () => {
    cluster = await TestRedisCluster.start({ nodeTimeoutMs: 1500 });
    db = await createTestDatabase();
    // The victim: the first master; the hammered account: one whose login counter (a single
    // key, no hash tag) lives in its slots.
    const [first] = await cluster.topology();
    victim = first!.port;
    const counterOf = (email: string) => `${KEY_PREFIX}rl:login-account:${emailKey(email)}`;
    do target = newAccount('target');
    while ((await cluster.masterOf(counterOf(target))) !== victim);
    counterKey = counterOf(target);
    victimAnnounced = victim;
    const env: Record<string, string> = {};
    if (scenario.holdReplication) {
      replication = await TcpProxy.create({ host: '127.0.0.1', port: victim });
      await replication.start();
      await cluster.command(victim, 'CONFIG', 'SET', 'cluster-announce-port', String(replication.port));
      victimAnnounced = replication.port;
      const replica = first!.replicas[0]!;
      await until("the victim's replica replicating through the proxy", 20_000, async () => {
        const info = String(await cluster!.command(replica, 'INFO', 'replication'));
        return info.includes(`master_port:${replication!.port}`) && info.includes('master_link_status:up') ? true : undefined;
      });
      env.REDIS_CLUSTER_NAT_MAP = `127.0.0.1:${replication.port}=127.0.0.1:${victim}`;
    }
    port = await freePort();
    app = await startLoadApp(port, cluster.url, db.url, LOGIN_LIMIT, env);
  }, 120_000);

  afterAll(async () => {
    app?.kill();
    await replication?.stop();
    await cluster?.stop();
    await db?.drop();
  }, 60_000);

  it('fails closed and fast while the slot has no master, keeps public reads, recovers, and holds revocations and the login limit', async () => {
    expect(await cluster!.masterOf(counterKey), "the account's login counter on the victim").toBe(victimAnnounced);
    const counterSlot = keySlot(counterKey);
    const onVictim = async (key: string) => (await cluster!.masterOf(KEY_PREFIX + key)) === victimAnnounced;
    const sessionOnVictim = (s: Session) => onVictim(SESSION_KEYS.session(claimsOf(s.accessToken).sid));
    let placement: Record<string, unknown> = {};

    // Sessions on the victim first where it matters most: the authenticated reads' one, some
    // logged out under load just before the kill, half the refresh chains, a few logged out before.
    const plan = async (sessions: Session[]): Promise<SessionPlan> => {
      const mine: Session[] = [];
      const others: Session[] = [];
      for (const s of sessions) ((await sessionOnVictim(s)) ? mine : others).push(s);
      const victims = new Set(mine);
      /** n sessions, up to `wanted` of them on the victim (others when it has no more, and the reverse). */
      const take = (n: number, wanted: number) => {
        const picked = mine.splice(0, wanted);
        picked.push(...others.splice(0, n - picked.length));
        picked.push(...mine.splice(0, n - picked.length));
        return picked;
      };
      const [live] = take(1, 1);
      const toLogOutUnderLoad = take(10, 5);
      const chains = take(6, 3);
      const revokedBefore = take(10, 3);
      const spares = take(10, 0);
      const count = (list: Session[]) => list.filter((s) => victims.has(s)).length;
      placement = {
        liveSession: victims.has(live!),
        liveUserGeneration: await onVictim(SESSION_KEYS.generation(claimsOf(live!.accessToken).sub)),
        chains: count(chains),
        revokedBefore: count(revokedBefore),
        revokedUnderLoad: count(toLogOutUnderLoad),
      };
      expect(placement.liveSession, "the authenticated reads' session on the victim").toBe(true);
      expect(placement.chains, 'refresh chains on the victim').toBeGreaterThan(0);
      expect(placement.revokedUnderLoad, 'sessions logged out under load on the victim').toBeGreaterThan(0);
      return { live: live!, chains, spares, revokedBefore, toLogOutUnderLoad };
    };

    await failoverUnderLoad(
      { app: app!, port, loginLimit: LOGIN_LIMIT, killAt: KILL_AT, loadSeconds: LOAD_SECONDS },
      {
        label: 'cluster failover under load',
        target,
        plan,
        holdReplication: replication && { hits: HELD_HITS, hold: () => replication!.hold() },
        kill: async () => {
          await cluster!.node(victim).process.stop(); // SIGKILL
          await replication?.stop(); // what it held back is dropped with the master
        },
        promoted: async () => (await cluster!.masterOf(counterKey)) !== victimAnnounced,
        loginCounter: async () => {
          const counter = await cluster!.command(await cluster!.masterOf(counterKey), 'GET', counterKey);
          expect(counter, "the app's counter under the key the test followed").not.toBeNull();
          return Number(counter);
        },
        figures: async () => ({ victim, counterSlot, onVictim: placement }),
      },
    );
    // The surviving masters never saw a command across slots.
    expect(await cluster!.crossSlotErrors()).toBe(0);
  }, 90_000);
});
