// TLS to Redis verifies the server's certificate against REDIS_TLS_CA_FILE: a redis-server on a
// TLS-only port with a certificate from a local CA, and a client given that CA or another one.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRedis } from '../../src/cli/check-production';
import { loadConfig } from '../../src/config';
import { closeRedis, connectRedis, createRedisClient } from '../../src/lib/redis';
import { captureLogger } from '../helpers/log-capture';
import { freePort, HAS_REDIS_SERVER, NO_REDIS_SERVER_REASON, RedisProcess } from '../helpers/redis-server';
import { toolAvailable } from '../helpers/services';

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

describe.skipIf(!HAS_REDIS_SERVER || !HAS_OPENSSL)(
  `Redis over TLS with a private CA${HAS_REDIS_SERVER ? (HAS_OPENSSL ? '' : ' (skipped: openssl not installed)') : ` (${NO_REDIS_SERVER_REASON})`}`,
  () => {
    let dir: string;
    let server: RedisProcess | undefined;
    let port: number;

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'rampart-redis-tls-'));
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

    async function connectWith(caFile: string | undefined): Promise<{ connected: boolean; errors: string }> {
      const config = loadConfig({ REDIS_URL: `rediss://127.0.0.1:${port}`, ...(caFile ? { REDIS_TLS_CA_FILE: path.join(dir, caFile) } : {}) });
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
