// /metrics for one process: Prometheus text with route templates (never raw ids), the app's
// counters, and text that promtool accepts.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterMetrics } from '../../src/lib/cluster-metrics';
import { createMetrics, type Metrics } from '../../src/lib/metrics';
import { createTestContext, type TestContext } from '../helpers/app';
import { sample } from '../helpers/prometheus';
import { toolAvailable } from '../helpers/services';

const HAS_PROMTOOL = toolAvailable(spawnSync('promtool', ['--version']).status === 0, 'promtool (Debian package prometheus)');

let ctx: TestContext;
let metrics: Metrics;
beforeAll(async () => {
  metrics = createMetrics({ defaultMetrics: true });
  ctx = await createTestContext({ app: { metrics }, env: { RATE_LIMIT_LOGIN_MAX: '1' } });
});
afterAll(async () => ctx?.close());

describe('/metrics', () => {
  it('labels requests by route template and status, never by raw path', async () => {
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    for (const id of ids) await request(ctx.app).get(`/api/v1/items/${id}`);
    await request(ctx.app).get('/no/such/path/123');
    await request(ctx.app).get('/no/such/path/456');
    const res = await request(ctx.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(sample(res.text, 'http_request_duration_seconds_count', { route: '/api/v1/items/:id', status_code: '404', method: 'GET' })).toBe(3);
    expect(sample(res.text, 'http_request_duration_seconds_count', { route: '(unmatched)', status_code: '404' })).toBe(2);
    for (const id of ids) expect(res.text).not.toContain(id);
    expect(res.text).not.toContain('/no/such/path');
    expect(res.text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(res.text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(res.text).toMatch(/^http_requests_in_flight /m);
  });

  it('counts rate-limit rejections, auth failures and cache events', async () => {
    const email = `${randomUUID()}@example.com`;
    await request(ctx.app).post('/api/v1/auth/login').send({ email, password: 'wrong wrong' });
    await request(ctx.app).post('/api/v1/auth/login').send({ email, password: 'wrong wrong' });
    await request(ctx.app).get('/api/v1/users/me').set('Authorization', 'Bearer nope');
    await request(ctx.app).get('/api/v1/items');
    await request(ctx.app).get('/api/v1/items');
    const text = (await request(ctx.app).get('/metrics')).text;
    expect(sample(text, 'rampart_rate_limited_total', { limiter: 'login' })).toBe(1);
    expect(sample(text, 'rampart_auth_failures_total', { reason: 'not a JWT' })).toBe(1);
    expect(sample(text, 'rampart_cache_events_total', { route: 'items:list', result: 'hit' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'rampart_cache_events_total', { route: 'items:list', result: 'miss' })).toBeGreaterThanOrEqual(1);
  });

  it('counts security events by event, whatever the log budget, refresh-token reuse included', async () => {
    const before = (await request(ctx.app).get('/metrics')).text;
    const count = (text: string, event: string) => sample(text, 'rampart_security_events_total', { event }) ?? 0;
    const email = `${randomUUID()}@example.com`;
    const reg = await request(ctx.app).post('/api/v1/auth/register').send({ email, password: 'metrics test password' });
    expect(reg.status).toBe(201);
    const first = await request(ctx.app).post('/api/v1/auth/refresh').send({ refreshToken: reg.body.refreshToken });
    expect(first.status).toBe(200);
    const reused = await request(ctx.app).post('/api/v1/auth/refresh').send({ refreshToken: reg.body.refreshToken });
    expect(reused.status).toBe(401);
    await request(ctx.app).get('/api/v1/users/me').set('Authorization', 'Bearer nope');
    const after = (await request(ctx.app).get('/metrics')).text;
    expect(count(after, 'refresh_reuse') - count(before, 'refresh_reuse')).toBe(1);
    expect(count(after, 'auth_rejected') - count(before, 'auth_rejected')).toBe(1);
    expect(count(after, 'login_failed')).toBeGreaterThanOrEqual(1); // the wrong passwords above
  });

  it('reports Redis and the database up, with their round-trip time, at each scrape', async () => {
    const text = (await request(ctx.app).get('/metrics')).text;
    for (const dependency of ['redis', 'database']) {
      expect(sample(text, 'rampart_dependency_up', { dependency }), dependency).toBe(1);
      const ping = sample(text, 'rampart_dependency_ping_seconds', { dependency });
      expect(ping, dependency).toBeGreaterThan(0);
      expect(ping, dependency).toBeLessThan(0.5); // the probe's own timeout
    }
    expect(text).toMatch(/^rampart_revocation_check_failures_total 0$/m);
  });

  it('exports the counters the alerts take increase() of at 0 from the start, and the start time', async () => {
    const text = await createMetrics({ defaultMetrics: true }).registry.metrics();
    for (const event of ['login_failed', 'refresh_reuse', 'auth_rejected', 'rate_limited', 'access_denied']) {
      expect(sample(text, 'rampart_security_events_total', { event }), event).toBe(0);
    }
    for (const dependency of ['redis', 'redis_cache', 'database']) expect(sample(text, 'rampart_dependency_errors_total', { dependency }), dependency).toBe(0);
    const started = Number(/^rampart_instance_start_time_seconds (\S+)$/m.exec(text)?.[1]);
    expect(Math.abs(started - (Date.now() / 1000 - process.uptime()))).toBeLessThan(1);
    // An app's limiters, each at 0 before any request is refused.
    const fresh = (await request(ctx.app).get('/metrics')).text;
    for (const limiter of ['api', 'login', 'login-account', 'register', 'refresh'])
      expect(sample(fresh, 'rampart_rate_limited_total', { limiter }), limiter).toBeDefined();
  });

  it('is not rate limited and answers before the API middleware', async () => {
    const res = await request(ctx.app).get('/metrics');
    expect(res.headers.ratelimit).toBeUndefined();
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it.skipIf(!HAS_PROMTOOL)(`passes promtool check metrics${HAS_PROMTOOL ? '' : ' [skipped: promtool not installed (Debian package prometheus)]'}`, async () => {
    const text = (await request(ctx.app).get('/metrics')).text;
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text });
    expect(check.stderr.toString() + check.stdout.toString()).toBe('');
    expect(check.status).toBe(0);
  });
});

describe('/metrics under PM2 cluster mode when the merge fails', () => {
  let cluster: TestContext;
  beforeAll(async () => {
    const failing = { collect: () => Promise.reject(new Error('PM2 bus unreachable')) } as unknown as ClusterMetrics;
    cluster = await createTestContext({ app: { metrics: createMetrics({ defaultMetrics: true }), clusterMetrics: failing } });
  });
  afterAll(async () => cluster?.close());

  it("answers this process's figures, says so with rampart_metrics_host_wide 0, and logs why", async () => {
    const res = await request(cluster.app).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^rampart_metrics_host_wide 0$/m);
    expect(res.text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(cluster.log.text()).toContain('host-wide metrics unavailable; answering for this process only');
    if (HAS_PROMTOOL) {
      const check = spawnSync('promtool', ['check', 'metrics'], { input: res.text });
      expect(check.stderr.toString() + check.stdout.toString()).toBe('');
    }
  });
});
