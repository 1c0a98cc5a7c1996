// A Sentinel failover under load (test/helpers/failover-load.ts): the built app in PM2 cluster
// mode (2 workers) sharing one Sentinel group (a master, two replicas, three sentinels from
// Debian's redis-server) and the real PostgreSQL, under autocannon and a hammer of wrong passwords
// for one account; the master is SIGKILLed halfway to the account's login limit. Run twice: with
// the replicas in step, and with replication held back before the kill so that hits are really
// lost (see SCENARIOS).
import Redis from 'ioredis';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { emailKey } from '../../src/middleware/rate-limit';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { failoverUnderLoad, newAccount, startLoadApp } from '../helpers/failover-load';
import type { Pm2App } from '../helpers/pm2';
import { freePort, HAS_REDIS_SERVER, NO_REDIS_SERVER_REASON } from '../helpers/redis-server';
import { SentinelGroup } from '../helpers/sentinel-group';
import { DATABASE_URL, NO_DATABASE_REASON } from '../helpers/services';

// Wrong passwords per account (RATE_LIMIT_LOGIN_ACCOUNT_MAX); the master dies once the counter
// reaches KILL_AT, so that attempts before and after the failover both count toward it.
const LOGIN_LIMIT = 40;
const KILL_AT = 20;
// With replication held: hits the master acknowledges alone before it dies.
const HELD_HITS = 8;
const LOAD_SECONDS = 24;

const CAN_RUN = HAS_REDIS_SERVER && Boolean(DATABASE_URL);
const REASON = HAS_REDIS_SERVER ? NO_DATABASE_REASON : NO_REDIS_SERVER_REASON;

// Two failovers: one as it happens on a quiet network (the replicas have every write within a
// millisecond, so nothing is lost), and one where the replication link lags for the last
// attempts before the kill (held in a proxy), so that the failover loses acknowledged hits and
// the test shows it measures them and bounds the attempts by them.
const SCENARIOS = [
  { name: 'replicas in step', holdReplication: false },
  { name: `replication held back for the last ${HELD_HITS}+ attempts before the kill`, holdReplication: true },
];

describe.skipIf(!CAN_RUN).each(SCENARIOS)(`Sentinel failover under load, PM2 cluster of 2 workers${CAN_RUN ? '' : ` [${REASON}]`}: $name`, (scenario) => {
  let group: SentinelGroup | undefined;
  let db: TestDatabase | undefined;
  let app: Pm2App | undefined;
  let port: number;

  beforeAll(async () => {
    group = await SentinelGroup.start({ replicationThroughProxy: scenario.holdReplication });
    db = await createTestDatabase();
    port = await freePort();
    app = await startLoadApp(port, group.url, db.url, LOGIN_LIMIT);
  }, 120_000);

  afterAll(async () => {
    app?.kill();
    await group?.stop();
    await db?.drop();
  }, 60_000);

  it('fails closed and fast during the failover, keeps public reads, recovers, and holds revocations and the login limit', async () => {
    const target = newAccount('target');
    const oldMaster = `127.0.0.1:${group!.masterPort}`;
    await failoverUnderLoad(
      { app: app!, port, loginLimit: LOGIN_LIMIT, killAt: KILL_AT, loadSeconds: LOAD_SECONDS },
      {
        label: 'sentinel failover under load',
        target,
        holdReplication: scenario.holdReplication ? { hits: HELD_HITS, hold: () => group!.holdReplication() } : undefined,
        kill: () => group!.killMaster(), // SIGKILL
        promoted: async () => (await group!.masterAddress()) !== oldMaster,
        events: (killedAt) => group!.events(killedAt),
        promotions: () => group!.promotions(),
        loginCounter: async () => {
          const newMaster = await group!.masterAddress();
          const direct = new Redis(Number(newMaster.split(':')[1]), '127.0.0.1', { maxRetriesPerRequest: 0 });
          try {
            const [counterKey] = await direct.keys(`*login-account*${emailKey(target)}*`);
            return Number(await direct.get(counterKey ?? 'missing'));
          } finally {
            direct.disconnect();
          }
        },
      },
    );
  }, 90_000);
});
