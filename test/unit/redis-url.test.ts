// REDIS_URL / CACHE_REDIS_URL in their three forms: one server, a Sentinel group, a Cluster.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { describeRedisTarget, parseRedisUrl, type RedisTarget } from '../../src/config/redis-url';
import { problemsOf } from '../helpers/config';

function target(raw: string): RedisTarget {
  const result = parseRedisUrl(raw);
  if (!result.ok) throw new Error(`unexpected problems: ${result.problems.join('; ')}`);
  return result.target;
}

function problems(raw: string): string[] {
  const result = parseRedisUrl(raw);
  if (result.ok) throw new Error('expected problems');
  return result.problems;
}

describe('parseRedisUrl', () => {
  it('takes one server as a URL, with TLS for rediss://', () => {
    expect(target('redis://127.0.0.1:6379')).toEqual({ kind: 'server', url: 'redis://127.0.0.1:6379', tls: false });
    expect(target(' rediss://:p%40ss@cache.internal:6380/2 ')).toEqual({ kind: 'server', url: 'rediss://:p%40ss@cache.internal:6380/2', tls: true });
    expect(problems('redis://u:p@[bad/')).toEqual(['is not a valid URL (percent-encode special characters in the password)']);
    expect(problems('redis://')).toEqual(['has no host']);
  });

  it('refuses other schemes', () => {
    expect(problems('http://127.0.0.1:6379')).toEqual(['must start with redis://, rediss://, redis-sentinel:// or redis-cluster://']);
    expect(problems('127.0.0.1:6379')).toHaveLength(1);
  });

  it('takes a Sentinel group: hosts, master name, database, credentials for each side, TLS', () => {
    expect(target('redis-sentinel://s1:26379,10.0.0.2:26380,[::1]:26381/mymaster')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'mymaster',
      db: 0,
      tls: false,
    });
    expect(target('REDIS-SENTINEL://app:p%40ss%3Aw%2Fo%2Crd@s1:26379/my.master-1/3?sentinelUsername=watch&sentinelPassword=s%26cret&tls=true')).toEqual({
      kind: 'sentinel',
      sentinels: [{ host: 's1', port: 26379 }],
      name: 'my.master-1',
      db: 3,
      username: 'app',
      password: 'p@ss:w/o,rd',
      sentinelUsername: 'watch',
      sentinelPassword: 's&cret',
      tls: true,
    });
    // A password alone (no ACL user), and tls=false spelled out.
    expect(target('redis-sentinel://:secret@s1:1/m?tls=false')).toMatchObject({ password: 'secret', tls: false });
    expect(target('redis-sentinel://:secret@s1:1/m')).not.toHaveProperty('username');
    expect(target('redis-sentinel://user@s1:65535/m')).toMatchObject({ username: 'user', sentinels: [{ host: 's1', port: 65535 }] });
    expect(target('redis-sentinel://user@s1:65535/m')).not.toHaveProperty('password');
    // Credentials end at the last @: an unencoded / in the password does not cut them short.
    expect(target('redis-sentinel://app:pa/ss@s1:1/m')).toMatchObject({ password: 'pa/ss', name: 'm' });
  });

  it('lists every problem of a Sentinel URL at once', () => {
    expect(problems('redis-sentinel://s1,bad_host:1,s3:0,s4:65536,[zz]:1/')).toEqual([
      'host 1 of 5: needs a port from 1 to 65535 (host:port)',
      'host 2 of 5: not a host name, an IPv4 address or an IPv6 address in brackets',
      'host 3 of 5: needs a port from 1 to 65535 (host:port)',
      'host 4 of 5: needs a port from 1 to 65535 (host:port)',
      'host 5 of 5: not a host name, an IPv4 address or an IPv6 address in brackets',
      'the master name (the path after the hosts) is missing or not 1 to 128 of A-Z a-z 0-9 . _ -',
      expect.stringMatching(/^expected redis-sentinel:\/\//),
    ]);
    expect(problems('redis-sentinel://s1:1/m/x/y?tls=yes&colour=blue&tls=true')).toEqual([
      'parameter tls is given more than once',
      'an unknown parameter (known: sentinelUsername, sentinelPassword, tls)',
      'parameter tls must be true or false',
      'the database index (after the master name) must be a whole number from 0 to 9999',
      'the path has more than a master name and a database index',
      expect.stringMatching(/^expected /),
    ]);
    expect(problems('redis-sentinel:///m')[0]).toBe('no host: list at least one host:port');
    expect(problems('redis-sentinel://s1:1')[0]).toMatch(/master name/);
    expect(problems('redis-sentinel://s1:1/m/12345')[0]).toMatch(/database index/);
    expect(target('redis-sentinel://s1:1/m/9999')).toMatchObject({ db: 9999 });
    expect(problems('redis-sentinel://u:%E0%A4%A@s1:1/m')[0]).toBe('the credentials are not correctly percent-encoded');
  });

  it('holds each part to its bounds: host names, IPv6 addresses, ports, master names', () => {
    const hostProblem = 'the host: not a host name, an IPv4 address or an IPv6 address in brackets';
    const portProblem = 'the host: needs a port from 1 to 65535 (host:port)';
    const first = (raw: string) => problems(raw)[0];
    expect(target('redis-sentinel://redis.internal.:1/m')).toMatchObject({ sentinels: [{ host: 'redis.internal.', port: 1 }] });
    expect(target(`redis-sentinel://${'a'.repeat(63)}.b:1/m`)).toMatchObject({ kind: 'sentinel' });
    expect(first(`redis-sentinel://${'a'.repeat(64)}.b:1/m`)).toBe(hostProblem);
    expect(target(`redis-sentinel://${'a.'.repeat(126)}a:1/m`)).toMatchObject({ kind: 'sentinel' });
    expect(first(`redis-sentinel://${'a.'.repeat(126)}ab:1/m`)).toBe(hostProblem);
    expect(first('redis-sentinel://-a:1/m')).toBe(hostProblem);
    expect(first('redis-sentinel://a..b:1/m')).toBe(hostProblem);
    expect(first('redis-sentinel://[::1]/m')).toBe(portProblem);
    expect(first('redis-sentinel://[::1]x:1/m')).toBe(hostProblem);
    expect(first('redis-sentinel://[1::2::3]:1/m')).toBe(hostProblem);
    expect(target('redis-sentinel://[fe80::1:2]:26379/m')).toMatchObject({ sentinels: [{ host: 'fe80::1:2', port: 26379 }] });
    expect(first('redis-sentinel://s1:1e3/m')).toBe(portProblem);
    expect(first('redis-sentinel://s1:/m')).toBe(portProblem);
    expect(target('redis-sentinel://s1:1/my%2Dmaster')).toMatchObject({ name: 'my-master' });
    expect(target(`redis-sentinel://s1:1/${'m'.repeat(128)}`)).toMatchObject({ name: 'm'.repeat(128) });
    expect(first(`redis-sentinel://s1:1/${'m'.repeat(129)}`)).toMatch(/master name/);
    expect(first('redis-sentinel://s1:1/m%ZZ')).toMatch(/master name/);
    expect(first('redis-sentinel://%E0%A4%A:pw@s1:1/m')).toBe('the credentials are not correctly percent-encoded');
  });

  it('never repeats the input in a message, a mistyped password included', () => {
    const secret = 'Sup3rS3cret';
    for (const raw of [
      `redis-sentinel://app:${secret}?x@s1:26379/m`,
      `redis-sentinel://app:${secret}@s1/m`,
      `redis-cluster://app:${secret}@n1:7000/${secret}`,
      `redis-sentinel://s1:1/${secret}!/x`,
      `redis-sentinel://s1:1/m?${secret}=1&tls=${secret}`,
      `redis://app:${secret}@[bad/`,
    ]) {
      const result = parseRedisUrl(raw);
      expect(result.ok, raw).toBe(false);
      if (!result.ok) expect(result.problems.join('\n'), raw).not.toContain('S3cret');
    }
  });

  it('takes a Cluster and refuses a database index there', () => {
    expect(target('redis-cluster://u:p@n1:7000,n2:7001?tls=true')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
      ],
      username: 'u',
      password: 'p',
      tls: true,
    });
    expect(problems('redis-cluster://n1:7000/0')).toEqual([
      'a database index is refused: a Redis Cluster has database 0 only',
      expect.stringMatching(/^expected redis-cluster:\/\//),
    ]);
    expect(problems('redis-cluster://n1:7000?sentinelPassword=x')[0]).toBe('an unknown parameter (known: tls)');
  });

  it('describes a target without its credentials', () => {
    expect(describeRedisTarget(target('redis-sentinel://u:pw@s1:1,[::1]:2/m?sentinelPassword=spw&tls=true'))).toBe('sentinel group "m" via s1:1,[::1]:2 (tls)');
    expect(describeRedisTarget(target('redis-sentinel://s1:1/m'))).toBe('sentinel group "m" via s1:1');
    expect(describeRedisTarget(target('redis-cluster://u:pw@n1:7000'))).toBe('cluster via n1:7000');
    expect(describeRedisTarget(target('redis-cluster://n1:7000?tls=true'))).toBe('cluster via n1:7000 (tls)');
    expect(describeRedisTarget(target('rediss://:pw@h:6380/2'))).toBe('rediss://h:6380/2');
    expect(describeRedisTarget(target('redis://h:6379'))).toBe('redis://h:6379');
  });
});

describe('REDIS_URL and CACHE_REDIS_URL in the configuration', () => {
  it('are parsed independently into targets', () => {
    const config = loadConfig({ REDIS_URL: 'redis-sentinel://s1:26379/main', CACHE_REDIS_URL: 'redis://cache:6379' });
    expect(config.redisUrl).toBe('redis-sentinel://s1:26379/main');
    expect(config.redisTarget).toMatchObject({ kind: 'sentinel', name: 'main' });
    expect(config.cacheRedisTarget).toEqual({ kind: 'server', url: 'redis://cache:6379', tls: false });
    expect(loadConfig({ REDIS_URL: ' redis://a:6379 ' }).redisUrl).toBe('redis://a:6379');
    const shared = loadConfig({ REDIS_URL: 'redis-sentinel://s1:26379/main' });
    expect(shared.cacheRedisTarget).toBe(shared.redisTarget);
    expect(shared.cacheRedisUrl).toBe(shared.redisUrl);
  });

  it('lists the problems of both, each under its name', () => {
    const found = problemsOf({ REDIS_URL: 'redis-sentinel://s1/m', CACHE_REDIS_URL: 'redis-cluster://n1:7000/1' });
    expect(found).toContain('REDIS_URL: the host: needs a port from 1 to 65535 (host:port)');
    expect(found.some((p) => p.startsWith('REDIS_URL: expected redis-sentinel://'))).toBe(true);
    expect(found).toContain('CACHE_REDIS_URL: a database index is refused: a Redis Cluster has database 0 only');
  });

  it('take a Cluster, for either role', () => {
    const config = loadConfig({ REDIS_URL: 'redis-cluster://app:pw@n1:7000,n2:7001', CACHE_REDIS_URL: 'redis-cluster://c1:7000?tls=true' });
    expect(config.redisTarget).toEqual({
      kind: 'cluster',
      nodes: [
        { host: 'n1', port: 7000 },
        { host: 'n2', port: 7001 },
      ],
      username: 'app',
      password: 'pw',
      tls: false,
    });
    expect(config.cacheRedisTarget).toMatchObject({ kind: 'cluster', tls: true });
    expect(config.redisClusterNatMap).toBeUndefined();
  });
});

describe('REDIS_CLUSTER_NAT_MAP', () => {
  it('maps announced addresses to reachable ones, IPv6 in brackets', () => {
    const config = loadConfig({
      REDIS_URL: 'redis-cluster://127.0.0.1:7001',
      REDIS_CLUSTER_NAT_MAP: ' 10.0.0.5:6379=127.0.0.1:7001, [fd00::6]:6379=localhost:7002 ',
    });
    expect(config.redisClusterNatMap).toEqual({
      '10.0.0.5:6379': { host: '127.0.0.1', port: 7001 },
      'fd00::6:6379': { host: 'localhost', port: 7002 },
    });
    expect(config.warnings.join('\n')).not.toMatch(/REDIS_CLUSTER_NAT_MAP/);
  });

  it('lists every problem, never repeating the input', () => {
    expect(problemsOf({ REDIS_CLUSTER_NAT_MAP: '10.0.0.5:6379=127.0.0.1,10.0.0.6,bad_host:1=h:2,10.0.0.5:6379=h:3' })).toEqual([
      'REDIS_CLUSTER_NAT_MAP: mapping 1 of 4: needs a port from 1 to 65535 (host:port)',
      'REDIS_CLUSTER_NAT_MAP: mapping 2 of 4: expected announced-host:port=reachable-host:port',
      'REDIS_CLUSTER_NAT_MAP: mapping 3 of 4: not a host name, an IPv4 address or an IPv6 address in brackets',
      'REDIS_CLUSTER_NAT_MAP: mapping 4 of 4: the announced address is mapped more than once',
    ]);
    expect(problemsOf({ REDIS_CLUSTER_NAT_MAP: ' , ' })).toEqual([
      'REDIS_CLUSTER_NAT_MAP: lists no mapping: expected announced-host:port=reachable-host:port[,...]',
    ]);
  });

  it('is unused, with a warning, when no URL is a Cluster', () => {
    expect(loadConfig({ REDIS_URL: 'redis://a:1', REDIS_CLUSTER_NAT_MAP: '10.0.0.5:6379=127.0.0.1:7001' }).warnings.join('\n')).toMatch(
      /REDIS_CLUSTER_NAT_MAP is set, but neither REDIS_URL nor CACHE_REDIS_URL is a Cluster/,
    );
  });
});

describe('REDIS_TLS_CA_FILE', () => {
  it('reads a PEM bundle once, and reports a missing file or one without a certificate', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rampart-ca-'));
    try {
      const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      writeFileSync(path.join(dir, 'ca.pem'), pem);
      writeFileSync(path.join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n');
      expect(loadConfig({ REDIS_TLS_CA_FILE: ` ${path.join(dir, 'ca.pem')} ` }).redisTlsCa).toBe(pem);
      expect(loadConfig({}).redisTlsCa).toBeUndefined();
      // A CA that no TLS connection uses is a mistake worth a warning, not a refusal.
      const unused = /REDIS_TLS_CA_FILE is set, but neither REDIS_URL nor CACHE_REDIS_URL uses TLS/;
      const ca = path.join(dir, 'ca.pem');
      expect(loadConfig({ REDIS_TLS_CA_FILE: ca }).warnings.join('\n')).toMatch(unused);
      expect(loadConfig({ REDIS_TLS_CA_FILE: ca, REDIS_URL: 'redis://a:1' }).warnings.join('\n')).toMatch(unused);
      expect(loadConfig({ REDIS_TLS_CA_FILE: ca, REDIS_URL: 'rediss://a:1' }).warnings.join('\n')).not.toMatch(unused);
      expect(
        loadConfig({ REDIS_TLS_CA_FILE: ca, REDIS_URL: 'redis://a:1', CACHE_REDIS_URL: 'redis-sentinel://s:1/m?tls=true' }).warnings.join('\n'),
      ).not.toMatch(unused);
      expect(loadConfig({ REDIS_URL: 'rediss://a:1' }).warnings.join('\n')).not.toMatch(unused);
      expect(problemsOf({ REDIS_TLS_CA_FILE: path.join(dir, 'missing.pem') })).toEqual(['REDIS_TLS_CA_FILE: cannot read the file (ENOENT)']);
      expect(problemsOf({ REDIS_TLS_CA_FILE: path.join(dir, 'key.pem') })).toEqual([
        'REDIS_TLS_CA_FILE: the file holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
