// Where a Redis lives: one server (redis://, rediss://), a Sentinel group (redis-sentinel://) or a
// Cluster (redis-cluster://). The multi-host forms carry a list of hosts, which a WHATWG URL cannot
// hold, so they are parsed here. Every problem of one URL is reported, and no message ever repeats a
// part of the input: a password typed without percent-encoding would otherwise end up in a log.

export interface RedisEndpoint {
  /** A host name or an IP address (IPv6 without its brackets). */
  host: string;
  port: number;
}

interface Credentials {
  /** Authenticates to the Redis servers themselves (ACL user and password, or password only). */
  username?: string;
  password?: string;
}

export type RedisTarget =
  | { kind: 'server'; url: string; tls: boolean }
  | (Credentials & {
      kind: 'sentinel';
      sentinels: RedisEndpoint[];
      /** The master's name as the sentinels know it. */
      name: string;
      db: number;
      /** Authenticates to the sentinels (they often have credentials of their own, or none). */
      sentinelUsername?: string;
      sentinelPassword?: string;
      tls: boolean;
    })
  | (Credentials & { kind: 'cluster'; nodes: RedisEndpoint[]; tls: boolean });

export type RedisUrlResult = { ok: true; target: RedisTarget } | { ok: false; problems: string[] };

const SENTINEL_FORM = 'redis-sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>][?sentinelUsername=&sentinelPassword=&tls=true]';
const CLUSTER_FORM = 'redis-cluster://[user:password@]host:port[,host:port...][?tls=true]';
const HOST_LABEL = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
const MASTER_NAME = /^[A-Za-z0-9._-]{1,128}$/;
const DB_INDEX = /^\d{1,4}$/;

/** Parses REDIS_URL / CACHE_REDIS_URL in any of the three forms. */
export function parseRedisUrl(raw: string): RedisUrlResult {
  const text = raw.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1]?.toLowerCase();
  if (scheme === 'redis' || scheme === 'rediss') return parseServerUrl(text, scheme === 'rediss');
  if (scheme === 'redis-sentinel' || scheme === 'redis-cluster') return parseMultiHost(text.slice(scheme.length + 3), scheme);
  return { ok: false, problems: ['must start with redis://, rediss://, redis-sentinel:// or redis-cluster://'] };
}

function parseServerUrl(text: string, tls: boolean): RedisUrlResult {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, problems: ['is not a valid URL (percent-encode special characters in the password)'] };
  }
  if (url.hostname === '') return { ok: false, problems: ['has no host'] };
  return { ok: true, target: { kind: 'server', url: text, tls } };
}

function parseMultiHost(rest: string, scheme: 'redis-sentinel' | 'redis-cluster'): RedisUrlResult {
  const problems: string[] = [];
  const sentinel = scheme === 'redis-sentinel';
  const form = sentinel ? SENTINEL_FORM : CLUSTER_FORM;

  const queryAt = rest.indexOf('?');
  const beforeQuery = queryAt === -1 ? rest : rest.slice(0, queryAt);
  // Credentials end at the last @ before the path: a password may hold @ only percent-encoded, but
  // a stray one must not make a host out of the password's tail.
  const slashAt = beforeQuery.indexOf('/', beforeQuery.lastIndexOf('@') + 1);
  const authority = slashAt === -1 ? beforeQuery : beforeQuery.slice(0, slashAt);
  const path = slashAt === -1 ? '' : beforeQuery.slice(slashAt + 1);
  const at = authority.lastIndexOf('@');
  const credentials = decodeCredentials(at === -1 ? undefined : authority.slice(0, at), problems);
  const endpoints = parseEndpoints(at === -1 ? authority : authority.slice(at + 1), problems);
  const query = parseQuery(queryAt === -1 ? '' : rest.slice(queryAt + 1), sentinel ? ['sentinelUsername', 'sentinelPassword', 'tls'] : ['tls'], problems);
  const tls = parseTlsFlag(query.get('tls'), problems);

  if (!sentinel) {
    if (path !== '') problems.push('a database index is refused: a Redis Cluster has database 0 only');
    if (problems.length > 0) return { ok: false, problems: [...problems, `expected ${form}`] };
    return { ok: true, target: { kind: 'cluster', nodes: endpoints, tls, ...credentials } };
  }

  const [rawName = '', rawDb, ...extra] = path.split('/');
  const name = percentDecode(rawName);
  if (name === undefined || !MASTER_NAME.test(name))
    problems.push('the master name (the path after the hosts) is missing or not 1 to 128 of A-Z a-z 0-9 . _ -');
  if (rawDb !== undefined && !DB_INDEX.test(rawDb)) problems.push('the database index (after the master name) must be a whole number from 0 to 9999');
  if (extra.length > 0) problems.push('the path has more than a master name and a database index');
  const sentinelUsername = query.get('sentinelUsername') ?? undefined;
  const sentinelPassword = query.get('sentinelPassword') ?? undefined;
  if (problems.length > 0) return { ok: false, problems: [...problems, `expected ${form}`] };
  return {
    ok: true,
    target: {
      kind: 'sentinel',
      sentinels: endpoints,
      name: name!,
      db: rawDb === undefined ? 0 : Number(rawDb),
      tls,
      ...credentials,
      ...(sentinelUsername === undefined ? {} : { sentinelUsername }),
      ...(sentinelPassword === undefined ? {} : { sentinelPassword }),
    },
  };
}

function percentDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function decodeCredentials(userinfo: string | undefined, problems: string[]): Credentials {
  if (userinfo === undefined) return {};
  const colon = userinfo.indexOf(':');
  const username = percentDecode(colon === -1 ? userinfo : userinfo.slice(0, colon));
  const password = colon === -1 ? '' : percentDecode(userinfo.slice(colon + 1));
  if (username === undefined || password === undefined) {
    problems.push('the credentials are not correctly percent-encoded');
    return {};
  }
  return { ...(username === '' ? {} : { username }), ...(password === '' ? {} : { password }) };
}

function parseEndpoints(list: string, problems: string[]): RedisEndpoint[] {
  if (list === '') {
    problems.push('no host: list at least one host:port');
    return [];
  }
  const endpoints: RedisEndpoint[] = [];
  const items = list.split(',');
  items.forEach((item, i) => {
    const which = items.length === 1 ? 'the host' : `host ${i + 1} of ${items.length}`;
    // The port follows the last colon, after the closing bracket of an IPv6 address.
    const colon = item.lastIndexOf(':');
    const bracketed = item.startsWith('[') && item.lastIndexOf(']') > 0;
    const close = item.lastIndexOf(']');
    const hasPort = bracketed ? colon > close : colon !== -1;
    const host = bracketed ? item.slice(1, close) : hasPort ? item.slice(0, colon) : item;
    const port = hasPort ? item.slice(colon + 1) : undefined;
    const hostOk = bracketed ? (!hasPort || colon === close + 1) && isIPv6(host) : isHostName(host);
    if (!hostOk) problems.push(`${which}: not a host name, an IPv4 address or an IPv6 address in brackets`);
    const portNumber = Number(port);
    if (port === undefined || !/^\d{1,5}$/.test(port) || portNumber < 1 || portNumber > 65535) {
      problems.push(`${which}: needs a port from 1 to 65535 (host:port)`);
    } else if (hostOk) {
      endpoints.push({ host, port: portNumber });
    }
  });
  return endpoints;
}

function isHostName(text: string): boolean {
  const labels = (text.endsWith('.') ? text.slice(0, -1) : text).split('.');
  return text.length <= 253 && labels.every((label) => HOST_LABEL.test(label));
}

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return false;
  try {
    return new URL(`http://[${text}]/`).hostname !== '';
  } catch {
    return false;
  }
}

function parseQuery(query: string, known: readonly string[], problems: string[]): URLSearchParams {
  const params = new URLSearchParams(query);
  const seen = new Set<string>();
  for (const key of params.keys()) {
    if (seen.has(key)) continue;
    seen.add(key);
    // The name is not repeated: with an unencoded ? in a password, the "parameter" is the password.
    if (!known.includes(key)) problems.push(`an unknown parameter (known: ${known.join(', ')})`);
    else if (params.getAll(key).length > 1) problems.push(`parameter ${key} is given more than once`);
  }
  return params;
}

function parseTlsFlag(value: string | null, problems: string[]): boolean {
  if (value === null || value === 'false') return false;
  if (value === 'true') return true;
  problems.push('parameter tls must be true or false');
  return false;
}

/**
 * Where a Cluster's nodes are reachable when the addresses they announce are not (containers, NAT):
 * announced host:port to reachable host:port, keyed as ioredis names a node ("host:port", IPv6
 * without brackets).
 */
export type RedisNatMap = Record<string, RedisEndpoint>;

export type NatMapResult = { ok: true; map: RedisNatMap } | { ok: false; problems: string[] };

/** REDIS_CLUSTER_NAT_MAP: `announced=reachable[,announced=reachable...]`, each side host:port. */
export function parseNatMap(raw: string): NatMapResult {
  const problems: string[] = [];
  const map: RedisNatMap = {};
  const seen = new Set<string>();
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (entries.length === 0) return { ok: false, problems: ['lists no mapping: expected announced-host:port=reachable-host:port[,...]'] };
  entries.forEach((entry, i) => {
    const which = entries.length === 1 ? 'the mapping' : `mapping ${i + 1} of ${entries.length}`;
    const sides = entry.split('=');
    if (sides.length !== 2) {
      problems.push(`${which}: expected announced-host:port=reachable-host:port`);
      return;
    }
    const own: string[] = [];
    const [from] = parseEndpoints(sides[0]!.trim(), own);
    const [to] = parseEndpoints(sides[1]!.trim(), own);
    problems.push(...own.map((p) => `${which}: ${p.replace(/^the host: /, '')}`));
    if (!from) return;
    const key = `${from.host}:${from.port}`;
    if (seen.has(key)) problems.push(`${which}: the announced address is mapped more than once`);
    seen.add(key);
    if (to) map[key] = to;
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, map };
}

/** A description of the target safe for logs and messages: kind and hosts, never credentials. */
export function describeRedisTarget(target: RedisTarget): string {
  const list = (endpoints: readonly RedisEndpoint[]) =>
    endpoints.map(({ host, port }) => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`)).join(',');
  if (target.kind === 'sentinel') return `sentinel group "${target.name}" via ${list(target.sentinels)}${target.tls ? ' (tls)' : ''}`;
  if (target.kind === 'cluster') return `cluster via ${list(target.nodes)}${target.tls ? ' (tls)' : ''}`;
  const url = new URL(target.url);
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}
