// TLS verifies the server's certificate against a configured CA: REDIS_TLS_CA_FILE for Redis (a
// redis-server on a TLS-only port), sslrootcert in DATABASE_URL for PostgreSQL (a PgBouncer taking
// TLS from clients, in front of the shared PostgreSQL, which is left as it is). The servers'
// certificate comes from a local CA; the client is given that CA or another one.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedis, checkRedisCluster } from '../../src/cli/check-production';
import { loadConfig } from '../../src/config';
import { createPostgres } from '../../src/lib/db/postgres';
import { closeRedis, connectRedis, createRedisClient } from '../../src/lib/redis';
import { RedisStore } from '../../src/lib/store/redis-store';
import { captureLogger } from '../helpers/log-capture';
import { freePort, HAS_REDIS_CLI, HAS_REDIS_SERVER, NO_REDIS_SERVER_REASON, RedisProcess, TestRedisCluster } from '../helpers/redis-server';
import { HAS_PGBOUNCER, NO_PGBOUNCER_REASON, TestPgBouncer } from '../helpers/pgbouncer';
import { DATABASE_URL, NO_DATABASE_REASON, toolAvailable } from '../helpers/services';

const HAS_OPENSSL = toolAvailable(spawnSync('openssl', ['version']).status === 0, 'openssl');

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore', timeout: 30_000 });
}

/** A self-signed CA: ca-<name>.pem and its key. */
function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=Rampart test CA ${name}`,
    '-keyout',
    `ca-${name}.key`,
    '-out',
    `ca-${name}.pem`,
  ]);
}

/** A temporary directory with two CAs (ca-good, ca-other) and server.pem/key for 127.0.0.1 from ca-good. */
function certificates(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'rampart-tls-'));
  makeCa(dir, 'good');
  makeCa(dir, 'other');
  openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  // The host name check needs the address in subjectAltName (the CN alone is not looked at).
  writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca-good.pem',
    '-CAkey',
    'ca-good.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-extfile',
    'san.ext',
    '-out',
    'server.pem',
  ]);
  // PgBouncer runs as nobody when started as root: it must read the certificate and its key.
  chmodSync(dir, 0o755);
  for (const file of ['server.pem', 'server.key', 'ca-good.pem']) chmodSync(path.join(dir, file), 0o644);
  return dir;
}

describe.skipIf(!HAS_REDIS_SERVER || !HAS_OPENSSL)(
  `Redis over TLS with a private CA${HAS_REDIS_SERVER ? (HAS_OPENSSL ? '' : ' (skipped: openssl not installed)') : ` (${NO_REDIS_SERVER_REASON})`}`,
  () => {
    let dir: string;
    let server: RedisProcess | undefined;
    let port: number;

    beforeAll(async () => {
      dir = certificates();
      port = await freePort();
      server = await RedisProcess.start([
        '--port',
        '0',
        '--bind',
        '127.0.0.1',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        path.join(dir, 'server.pem'),
        '--tls-key-file',
        path.join(dir, 'server.key'),
        '--tls-ca-cert-file',
        path.join(dir, 'ca-good.pem'),
        '--tls-auth-clients',
        'no',
      ]);
    }, 60_000);

    afterAll(async () => {
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    async function connectWith(caFile: string | undefined, url = `rediss://127.0.0.1:${port}`): Promise<{ connected: boolean; errors: string }> {
      const config = loadConfig({ REDIS_URL: url, ...(caFile ? { REDIS_TLS_CA_FILE: path.join(dir, caFile) } : {}) });
      const { logger, ...captured } = captureLogger();
      const client = createRedisClient({ target: config.redisTarget!, tlsCa: config.redisTlsCa, role: 'tls-test', commandTimeoutMs: 1000, logger });
      try {
        const connected = (await connectRedis(client, 3000)) && (await client.ping()) === 'PONG';
        return { connected, errors: captured.text() };
      } finally {
        await closeRedis(client);
      }
    }

    it('accepts a certificate from the configured CA', async () => {
      const { connected } = await connectWith('ca-good.pem');
      expect(connected).toBe(true);
    });

    it('is what the doctor checks, with the same CA', async () => {
      const config = loadConfig({ REDIS_URL: `rediss://127.0.0.1:${port}`, REDIS_TLS_CA_FILE: path.join(dir, 'ca-good.pem') });
      expect(await checkRedis(config.redisTarget!, config.redisTlsCa, 'security', true)).toMatchObject({ ok: true });
      expect(await checkRedis(config.redisTarget!, undefined, 'security', true)).toMatchObject({ ok: false, message: expect.stringMatching(/unreachable/) });
    });

    it.skipIf(!HAS_REDIS_CLI)(
      `reaches a Cluster over TLS (tls=true): every node verified against the CA${HAS_REDIS_CLI ? '' : ' (skipped: redis-cli binary not installed)'}`,
      async () => {
        const cluster = await TestRedisCluster.start({
          tls: { cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca-good.pem') },
        });
        try {
          expect(cluster.url).toMatch(/^redis-cluster:\/\/.*\?tls=true$/);
          expect((await connectWith('ca-good.pem', cluster.url)).connected).toBe(true);
          expect((await connectWith('ca-other.pem', cluster.url)).connected).toBe(false);

          // Keys of many slots: every master reached over TLS with the same CA.
          const config = loadConfig({ REDIS_URL: cluster.url, REDIS_TLS_CA_FILE: path.join(dir, 'ca-good.pem') });
          const { logger } = captureLogger();
          const client = createRedisClient({ target: config.redisTarget!, tlsCa: config.redisTlsCa, role: 'tls-test', commandTimeoutMs: 1000, logger });
          try {
            expect(await connectRedis(client, 5000)).toBe(true);
            const store = new RedisStore(client, 'rampart:test:tls-cluster:');
            const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
            for (const key of keys) await store.set(key, key, 60_000);
            expect(await store.mget(keys)).toEqual(keys);
            expect(await store.del(keys)).toBe(keys.length);
          } finally {
            await closeRedis(client);
          }

          // The doctor, with the same CA: each master by its address.
          if (config.redisTarget?.kind !== 'cluster') throw new Error('expected a Cluster target');
          const findings = await checkRedisCluster(config.redisTarget, { tlsCa: config.redisTlsCa }, 'cache', false);
          expect(findings).toHaveLength(3);
          for (const f of findings) expect(f).toMatchObject({ ok: true, message: expect.stringMatching(/^master 127\.0\.0\.1:\d+ reachable/) });
        } finally {
          await cluster.stop();
        }
      },
      90_000,
    );

    it('reaches a Sentinel group over TLS (tls=true): sentinels and master verified against the CA', async () => {
      const sentinelPort = await freePort();
      const conf = path.join(dir, 'sentinel.conf');
      const tls = ['tls-cert-file server.pem', 'tls-key-file server.key', 'tls-ca-cert-file ca-good.pem', 'tls-auth-clients no', 'tls-replication yes'];
      writeFileSync(
        conf,
        [
          'port 0',
          `tls-port ${sentinelPort}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          ...tls.map((l) => l.replace(/ (\S+\.(pem|key))$/, ` ${dir}/$1`)),
          `sentinel monitor tlsgroup 127.0.0.1 ${port} 1`,
          '',
        ].join('\n'),
      );
      const sentinel = await RedisProcess.start([conf, '--sentinel'], /\+monitor master/);
      try {
        const url = `redis-sentinel://127.0.0.1:${sentinelPort}/tlsgroup?tls=true`;
        expect((await connectWith('ca-good.pem', url)).connected).toBe(true);
        const other = await connectWith('ca-other.pem', url);
        expect(other.connected).toBe(false);
      } finally {
        await sentinel.stop();
      }
    });

    it('refuses a certificate from another CA, and one from a CA Node does not bundle', async () => {
      const other = await connectWith('ca-other.pem');
      expect(other.connected).toBe(false);
      expect(other.errors).toMatch(/certificate/i);
      const bundled = await connectWith(undefined);
      expect(bundled.connected).toBe(false);
      expect(bundled.errors).toMatch(/certificate/i);
    });
  },
);

describe.skipIf(!HAS_PGBOUNCER || !HAS_OPENSSL || !DATABASE_URL)(
  `PostgreSQL over TLS with a private CA${!DATABASE_URL ? ` (${NO_DATABASE_REASON})` : !HAS_PGBOUNCER ? ` (${NO_PGBOUNCER_REASON})` : HAS_OPENSSL ? '' : ' (skipped: openssl not installed)'}`,
  () => {
    let dir: string;
    let bouncer: TestPgBouncer | undefined;

    beforeAll(async () => {
      dir = certificates();
      bouncer = await TestPgBouncer.create(DATABASE_URL!, {
        client_tls_sslmode: 'require',
        client_tls_cert_file: path.join(dir, 'server.pem'),
        client_tls_key_file: path.join(dir, 'server.key'),
      });
    }, 60_000);

    afterAll(async () => {
      await bouncer?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    async function queryWith(caFile: string): Promise<unknown> {
      const url = `${bouncer!.url()}?sslmode=verify-full&sslrootcert=${encodeURIComponent(path.join(dir, caFile))}`;
      const config = loadConfig({ DATABASE_URL: url, DB_TRANSACTION_POOLING: 'true' });
      const db = createPostgres({ url: config.databaseUrl!, poolMax: 1, statementTimeoutMs: 2000, transactionPooling: true, logger: captureLogger().logger });
      try {
        return (await db.query<{ tls: boolean }>('select 1 as one')).rows[0];
      } catch (err) {
        return err;
      } finally {
        await db.close();
      }
    }

    it('accepts the server certificate from the CA in sslrootcert, and refuses one from another CA', async () => {
      expect(await queryWith('ca-good.pem')).toEqual({ one: 1 });
      const refused = await queryWith('ca-other.pem');
      expect(refused).toBeInstanceOf(Error);
      expect(String((refused as Error & { cause?: unknown }).cause ?? refused)).toMatch(/certificate/i);
    });
  },
);
