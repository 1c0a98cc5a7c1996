// The parsers behind the configuration's durations, sizes, booleans, proxies, address lists and
// origins: what each accepts, what it refuses, and the message an operator reads. Loaded inside
// each test (test/helpers/fresh.ts): their patterns and unit tables are top-level declarations.
import { describe, expect, it } from 'vitest';
import { fresh } from '../helpers/fresh';

const parsers = () => fresh(() => import('../../src/config/parsers.js'));

describe('parseDurationMs', () => {
  it('reads a count of seconds, or a count with a unit', async () => {
    const { parseDurationMs } = await parsers();
    expect(parseDurationMs('900')).toBe(900_000);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('15m')).toBe(900_000);
    expect(parseDurationMs('12h')).toBe(12 * 3_600_000);
    expect(parseDurationMs('7d')).toBe(7 * 86_400_000);
    expect(parseDurationMs(' 15 m ')).toBe(900_000);
    expect(parseDurationMs('1ms')).toBe(1);
  });

  it('refuses anything else, and nothing', async () => {
    const { parseDurationMs } = await parsers();
    for (const bad of ['soon', '1e3', '1.5m', '-5', '+5', '15M', '15 minutes', 'm', '5d5', 'x5m', '']) {
      expect(() => parseDurationMs(bad), bad).toThrow(/^must be a duration such as 900, 15m, 12h or 7d$/);
    }
    for (const bad of ['0', '0ms', '0d', '99999999999999999d']) expect(() => parseDurationMs(bad), bad).toThrow(/^must be a positive duration$/);
  });
});

describe('parseByteSize', () => {
  it('reads bytes, or a size with a unit', async () => {
    const { parseByteSize } = await parsers();
    expect(parseByteSize('2048')).toBe(2048);
    expect(parseByteSize('100b')).toBe(100);
    expect(parseByteSize('100kb')).toBe(102_400);
    expect(parseByteSize(' 100 KB ')).toBe(102_400);
    expect(parseByteSize('1mb')).toBe(1_048_576);
    expect(parseByteSize('1.5kb')).toBe(1536);
    expect(parseByteSize('1.25KB')).toBe(1280);
    expect(parseByteSize('10.5kb')).toBe(10_752);
    expect(parseByteSize('1b')).toBe(1);
    expect(parseByteSize('1gb')).toBe(1_073_741_824);
  });

  it('refuses what is not a whole size, and nothing', async () => {
    const { parseByteSize } = await parsers();
    // bytes.parse() alone reads 1e3 as 1, 12abc as 12 and 1.5 as 1: a typo must not become a limit.
    for (const bad of [
      'lots',
      '1e3',
      '12abc',
      '1.5',
      '1.5b',
      '-5',
      '-5kb',
      '+5kb',
      '0',
      '0kb',
      '0.0001kb',
      'kb',
      '5 k b',
      '1tb',
      '1kbx',
      '1.5kbs',
      'x1kb',
      '.5kb',
      '1.kb',
      '100\tkb',
      '9'.repeat(400),
      '',
    ]) {
      expect(() => parseByteSize(bad), bad).toThrow(/^must be a size such as 100kb or 1mb$/);
    }
  });
});

describe('parseBoolean', () => {
  it('reads the words people write, in any case, "false" being false', async () => {
    const { parseBoolean } = await parsers();
    for (const yes of ['true', 'TRUE', ' True ', '1', 'yes', 'YES', 'on', 'On']) expect(parseBoolean(yes), yes).toBe(true);
    for (const no of ['false', 'FALSE', ' False ', '0', 'no', 'NO', 'off', 'Off', '', '  ']) expect(parseBoolean(no), no).toBe(false);
  });

  it('refuses anything else', async () => {
    const { parseBoolean } = await parsers();
    for (const bad of ['maybe', '2', 'y', 'n', 'enabled', 'true!', 'yes please']) expect(() => parseBoolean(bad), bad).toThrow(/^must be true or false$/);
  });
});

describe('parseTrustProxy', () => {
  it('reads a hop count, nothing, or a list of addresses and proxy-addr names', async () => {
    const { parseTrustProxy } = await parsers();
    expect(parseTrustProxy('1')).toBe(1);
    expect(parseTrustProxy(' 2 ')).toBe(2);
    expect(parseTrustProxy('12')).toBe(12);
    for (const off of ['false', 'FALSE', 'no', 'off', '0', '']) expect(parseTrustProxy(off), off).toBe(false);
    expect(parseTrustProxy('10.0.0.1')).toEqual(['10.0.0.1']);
    expect(parseTrustProxy(' loopback , 10.0.0.0/8 ,, fd00::/8 ,')).toEqual(['loopback', '10.0.0.0/8', 'fd00::/8']);
    expect(parseTrustProxy('uniquelocal')).toEqual(['uniquelocal']);
  });

  it('refuses true in every spelling: it would let any client pick its own address', async () => {
    const { parseTrustProxy } = await parsers();
    for (const bad of ['true', 'TRUE', 'yes', 'Yes', 'on', 'ON', '*', ' true ']) {
      expect(() => parseTrustProxy(bad), bad).toThrow(/^must not be true: give a hop count \(e\.g\. 1\) or proxy addresses; true lets clients forge their IP$/);
    }
  });

  it('refuses a list that trusts every address', async () => {
    const { parseTrustProxy } = await parsers();
    for (const bad of ['0.0.0.0/0', '::/0', '::/1', '10.0.0.1, 0.0.0.0/0', '0.0.0.0', 'loopback,::/0']) {
      expect(() => parseTrustProxy(bad), bad).toThrow(/^must not trust every address: that is the same as true$/);
    }
  });

  it('refuses what is neither a count nor addresses', async () => {
    const { parseTrustProxy } = await parsers();
    // Not a pattern for "every address", and not an address either: refused as such.
    for (const bad of ['not-an-ip', '1e3', '-1', '1.5', 'truely', 'untrue', 'maybe-on', 'yes-please', '*.example.com', 'x0.0.0.0/0', '0.0.0.0/0x', '::/a']) {
      expect(() => parseTrustProxy(bad), bad).toThrow(
        /^must be a hop count or a comma-separated list of IP addresses, CIDRs or loopback\/linklocal\/uniquelocal$/,
      );
    }
  });

  it('keeps narrower IPv6 prefixes, which name real networks', async () => {
    const { parseTrustProxy } = await parsers();
    expect(parseTrustProxy('::/16')).toEqual(['::/16']);
  });
});

describe('parseAddressList', () => {
  it('reads a list of addresses, CIDRs and names, trimmed, empty entries dropped', async () => {
    const { parseAddressList } = await parsers();
    expect(parseAddressList(' 10.0.0.0/8 , 192.168.1.5,, loopback ')).toEqual(['10.0.0.0/8', '192.168.1.5', 'loopback']);
    expect(parseAddressList('::1')).toEqual(['::1']);
  });

  it('refuses anything proxy-addr cannot read', async () => {
    const { parseAddressList } = await parsers();
    for (const bad of ['everyone', '10.0.0.0/33', '10.0.0.1, nope']) {
      expect(() => parseAddressList(bad), bad).toThrow(/^must be a comma-separated list of IP addresses, CIDRs or loopback\/linklocal\/uniquelocal$/);
    }
  });
});

describe('parseOrigins', () => {
  it('reads exact origins, trimmed, empty entries dropped', async () => {
    const { parseOrigins } = await parsers();
    expect(parseOrigins(' https://a.example.com ,, http://localhost:5173 ,')).toEqual(['https://a.example.com', 'http://localhost:5173']);
    expect(parseOrigins('')).toEqual([]);
  });

  it('refuses the wildcard and null, naming them', async () => {
    const { parseOrigins } = await parsers();
    expect(() => parseOrigins('*')).toThrow(/^must list exact origins; "\*" is not allowed$/);
    expect(() => parseOrigins('https://a.example.com,null')).toThrow(/^must list exact origins; "null" is not allowed$/);
    expect(() => parseOrigins('NULL')).toThrow(/^must list exact origins; "NULL" is not allowed$/);
  });

  it('refuses what is not an origin', async () => {
    const { parseOrigins } = await parsers();
    expect(() => parseOrigins('a.example.com')).toThrow(/^"a\.example\.com" is not an origin such as https:\/\/app\.example\.com$/);
  });

  it('refuses an origin with a path, a default port, upper case or another scheme', async () => {
    const { parseOrigins } = await parsers();
    for (const bad of [
      'https://a.example.com/',
      'https://a.example.com/app',
      'http://a.example.com:80',
      'https://A.example.com',
      'ftp://a.example.com',
      'wss://a.example.com',
      'ws://a.example.com',
    ]) {
      expect(() => parseOrigins(bad), bad).toThrow(
        new RegExp(`^"${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" is not an exact origin \\(scheme://host\\[:port\\], no path or trailing slash\\)$`),
      );
    }
  });
});
