// Tracing end to end: the real entry point in a child process (instrumentation must load before
// express, pg and ioredis), exporting over OTLP/HTTP (JSON encoding) to a receiver in this test,
// with real Redis and PostgreSQL. Checks the incoming traceparent's ids on the server span, pg and
// ioredis spans as its descendants, the trace ids on the request's log lines, a malformed
// traceparent starting a new trace, and that with tracing off nothing is exported and no
// OpenTelemetry module is loaded.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteRedisPrefix } from '../helpers/app';
import { SECRET_A, SECRET_B } from '../helpers/config';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freePort } from '../helpers/redis-server';
import { DATABASE_URL, NO_DATABASE_REASON, NO_REDIS_REASON, REDIS_URL, uniqueSuffix } from '../helpers/services';

const ROOT = path.resolve(__dirname, '../..');
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}
const SERVER = 2; // OTLP SpanKind SPAN_KIND_SERVER

/** A local OTLP/HTTP endpoint: collects the spans of every JSON export, counts connections. */
async function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as { resourceSpans?: { scopeSpans?: { spans?: OtlpSpan[] }[] }[] };
        for (const rs of payload.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const attribute = (span: OtlpSpan, key: string): unknown => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value && Object.values(value)[0];
};

interface Launched {
  child: ChildProcess;
  port: number;
  output: () => string;
  logLines: () => Record<string, unknown>[];
  stop: () => Promise<number | null>;
}

/** `node --import tsx src/server.ts` in production mode (JSON log lines), up and answering /health. */
async function launch(env: Record<string, string>, preload?: string): Promise<Launched> {
  const port = await freePort();
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OTEL_') && k !== 'CI') clean[k] = v;
  const args = [...(preload ? ['--require', preload] : []), '--import', 'tsx', 'src/server.ts'];
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: {
      ...clean,
      NODE_ENV: 'production',
      JWT_ACCESS_SECRET: SECRET_A,
      JWT_REFRESH_SECRET: SECRET_B,
      CORS_ORIGINS: 'https://app.example.com',
      TRUST_PROXY: 'loopback',
      SHUTDOWN_DRAIN_MS: '50',
      PORT: String(port),
      HOST: '127.0.0.1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let up = false;
  for (let i = 0; i < 160 && !up && child.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 250));
    up = await fetch(`http://127.0.0.1:${port}/health`).then(
      (r) => r.status === 200,
      () => false,
    );
  }
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`the server did not come up:\n${output}`);
  }
  return {
    child,
    port,
    output: () => output,
    logLines: () =>
      output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The spans of one trace, walked up from `span` to its root within the trace. */
function ancestors(spans: OtlpSpan[], span: OtlpSpan): OtlpSpan[] {
  const chain: OtlpSpan[] = [];
  let parent = spans.find((s) => s.spanId === span.parentSpanId);
  while (parent && chain.length < 20) {
    chain.push(parent);
    const id = parent.parentSpanId;
    parent = spans.find((s) => s.spanId === id);
  }
  return chain;
}

const services = Boolean(REDIS_URL && DATABASE_URL);

describe.skipIf(!services)(`tracing against real Redis and PostgreSQL${services ? '' : ` (${NO_REDIS_REASON}; ${NO_DATABASE_REASON})`}`, () => {
  let database: TestDatabase;
  const prefix = `rampart-trace-${uniqueSuffix()}:`;
  const common = () => ({ REDIS_URL: REDIS_URL!, DATABASE_URL: database.url, REDIS_KEY_PREFIX: prefix });
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rampart-tracing-'));
    database = await createTestDatabase();
  });
  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await deleteRedisPrefix(REDIS_URL!, prefix).catch(() => undefined);
    await database?.drop();
  });

  /**
   * A preload that writes, at exit, every loaded OpenTelemetry module but the API, which
   * prom-client always loads (for exemplars) and which does nothing without an SDK.
   */
  function moduleProbe(): { preload: string; loaded: () => string[] } {
    const out = path.join(dir, `modules-${uniqueSuffix()}.json`);
    const preload = path.join(dir, `probe-${uniqueSuffix()}.js`);
    writeFileSync(
      preload,
      `if(!require('worker_threads').isMainThread)return;process.on('exit',()=>require('fs').writeFileSync(${JSON.stringify(out)},JSON.stringify(Object.keys(require.cache).filter(k=>k.includes('@opentelemetry')&&!k.includes('@opentelemetry/api/')))));`,
    );
    return { preload, loaded: () => JSON.parse(readFileSync(out, 'utf8')) as string[] };
  }

  describe('with an OTLP endpoint set', () => {
    let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
    let app: Launched;
    let probe: ReturnType<typeof moduleProbe>;

    beforeAll(async () => {
      receiver = await otlpReceiver();
      probe = moduleProbe();
      app = await launch(
        {
          ...common(),
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_BSP_SCHEDULE_DELAY: '100',
          OTEL_SERVICE_NAME: 'rampart-tracing-test',
        },
        probe.preload,
      );
    }, 60_000);
    afterAll(async () => {
      await app?.stop();
      await receiver?.close();
    });

    it('continues the incoming trace: server span under the caller, pg and ioredis spans under it, ids on the log lines', async () => {
      const requestId = `trace-${uniqueSuffix()}`;
      const res = await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=traced`, {
        headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': requestId },
      });
      expect(res.status, app.output()).toBe(200);

      const server = await until('the server span', () => receiver.spans.find((s) => s.traceId === TRACE_ID && s.kind === SERVER));
      expect(server.parentSpanId).toBe(PARENT_ID);
      expect(server.name).toBe('GET /api/v1/items');
      const inTrace = () => receiver.spans.filter((s) => s.traceId === TRACE_ID);
      const isPg = (s: OtlpSpan) => attribute(s, 'db.system.name') === 'postgresql' || attribute(s, 'db.system') === 'postgresql';
      const isRedis = (s: OtlpSpan) => attribute(s, 'db.system.name') === 'redis' || attribute(s, 'db.system') === 'redis';
      const pg = await until('a pg span', () => inTrace().find(isPg));
      const redis = await until('an ioredis span', () => inTrace().find(isRedis));
      for (const child of [pg, redis]) {
        expect(
          ancestors(inTrace(), child).map((s) => s.spanId),
          `${child.name} descends from the server span`,
        ).toContain(server.spanId);
      }

      const lines = await until('the access log line', () => {
        const mine = app.logLines().filter((l) => l.requestId === requestId);
        return mine.some((l) => l.message === 'request completed') ? mine : undefined;
      });
      for (const line of lines) {
        expect(line.traceId, JSON.stringify(line)).toBe(TRACE_ID);
        expect(line.spanId, JSON.stringify(line)).toBe(server.spanId);
      }
    }, 30_000);

    it('ignores a malformed traceparent: the request succeeds in a new trace, logged with its ids', async () => {
      const requestId = `trace-bad-${uniqueSuffix()}`;
      const malformed = `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`;
      const res = await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=malformed`, {
        headers: { traceparent: malformed, 'x-request-id': requestId },
      });
      expect(res.status, app.output()).toBe(200);
      const line = await until('the access log line', () => app.logLines().find((l) => l.requestId === requestId && l.message === 'request completed'));
      expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(line.traceId).not.toBe(TRACE_ID);
      const server = await until('the server span', () => receiver.spans.find((s) => s.traceId === line.traceId && s.kind === SERVER));
      expect(server.parentSpanId ?? '').toBe('');
      expect(server.spanId).toBe(line.spanId);
    }, 30_000);

    it('does not trace health polls', async () => {
      const before = receiver.spans.length;
      await fetch(`http://127.0.0.1:${app.port}/health`);
      await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=after-health`);
      await until('the next request span', () => receiver.spans.slice(before).find((s) => s.kind === SERVER));
      expect(receiver.spans.filter((s) => s.kind === SERVER && String(attribute(s, 'url.path')).startsWith('/health'))).toEqual([]);
    }, 30_000);

    it('loaded the SDK and its instrumentations (what the tracing-off tests check is absent), and stops cleanly', async () => {
      expect(await app.stop()).toBe(0);
      const loaded = probe.loaded().join('\n');
      for (const name of ['sdk-node', 'instrumentation-http', 'instrumentation-express', 'instrumentation-pg', 'instrumentation-ioredis']) {
        expect(loaded).toContain(`@opentelemetry/${name}/`);
      }
    }, 30_000);
  });

  it('with a collector that cannot be reached, requests are answered as usual and the SDK says why on stderr', async () => {
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const app = await launch({ ...common(), OTEL_EXPORTER_OTLP_ENDPOINT: nowhere, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '100' });
    try {
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=nowhere`, { headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } });
        expect(res.status).toBe(200);
      }
      await until('the export error on stderr', () => (/ECONNREFUSED/.test(app.output()) ? true : undefined));
      expect(await app.stop()).toBe(0);
    } finally {
      await app.stop();
    }
  }, 60_000);

  describe('with tracing off', () => {
    it.each([
      ['OTEL_SDK_DISABLED=true wins over an endpoint', { OTEL_SDK_DISABLED: 'true' }],
      ['OTEL_TRACES_EXPORTER=none wins over an endpoint', { OTEL_TRACES_EXPORTER: 'none' }],
    ])(
      '%s: nothing is exported and no OpenTelemetry module loads; log lines still carry the trace ids',
      async (_name, off) => {
        const receiver = await otlpReceiver();
        const probe = moduleProbe();
        let app: Launched | undefined;
        try {
          app = await launch({ ...common(), OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100', ...off }, probe.preload);
          const requestId = `trace-off-${uniqueSuffix()}`;
          const res = await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=off`, {
            headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, 'x-request-id': requestId },
          });
          expect(res.status).toBe(200);
          const line = await until('the access log line', () => app!.logLines().find((l) => l.requestId === requestId && l.message === 'request completed'));
          expect(line.traceId).toBe(TRACE_ID);
          // This request's own span id, not the caller's.
          expect(line.spanId).toMatch(/^[0-9a-f]{16}$/);
          expect(line.spanId).not.toBe(PARENT_ID);
          expect(await app.stop()).toBe(0);
          expect(probe.loaded()).toEqual([]);
          expect(receiver.connections()).toBe(0);
        } finally {
          await app?.stop();
          await receiver.close();
        }
      },
      60_000,
    );

    it('with no OTEL variable at all, a request without traceparent is logged in a new trace', async () => {
      const probe = moduleProbe();
      const app = await launch(common(), probe.preload);
      try {
        const requestId = `trace-none-${uniqueSuffix()}`;
        const res = await fetch(`http://127.0.0.1:${app.port}/api/v1/items?tag=none`, { headers: { 'x-request-id': requestId } });
        expect(res.status).toBe(200);
        const line = await until('the access log line', () => app.logLines().find((l) => l.requestId === requestId && l.message === 'request completed'));
        expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(line.spanId).toMatch(/^[0-9a-f]{16}$/);
        expect(await app.stop()).toBe(0);
        expect(probe.loaded()).toEqual([]);
      } finally {
        await app.stop();
      }
    }, 60_000);
  });
});
