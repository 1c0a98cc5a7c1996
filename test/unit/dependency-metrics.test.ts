// The dependency gauges: filled from the probes at scrape time, aggregated under PM2 so that one
// instance that cannot reach a dependency shows it down, and its slowest round trip.
import { AggregatorRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { hostWide, mergedScrape } from '../../src/lib/cluster-metrics';
import { createMetrics } from '../../src/lib/metrics';
import type { ProbeResult, Probes } from '../../src/lib/probes';
import { sample } from '../helpers/prometheus';

const time = new Date(0).toISOString();
const probes = (redis: ProbeResult, database: ProbeResult): Probes => ({ redis: async () => redis, database: async () => database });

describe('dependency gauges', () => {
  it('are absent until the probes are known (an app without them reports nothing false)', async () => {
    const text = await createMetrics().registry.metrics();
    expect(text).not.toMatch(/^rampart_dependency_up\{/m);
    expect(text).not.toMatch(/^rampart_dependency_ping_seconds\{/m);
  });

  it('say up with the round trip in seconds, or down with no round trip', async () => {
    const metrics = createMetrics();
    metrics.watchDependencies(probes({ ok: true, latencyMs: 2.5, time }, { ok: false, error: 'timeout', time }));
    const text = await metrics.registry.metrics();
    expect(sample(text, 'rampart_dependency_up', { dependency: 'redis' })).toBe(1);
    expect(sample(text, 'rampart_dependency_up', { dependency: 'database' })).toBe(0);
    expect(sample(text, 'rampart_dependency_ping_seconds', { dependency: 'redis' })).toBe(0.0025);
    expect(sample(text, 'rampart_dependency_ping_seconds', { dependency: 'database' })).toBeUndefined();
  });

  it('forget a round trip once the dependency stops answering', async () => {
    const metrics = createMetrics();
    let up = true;
    metrics.watchDependencies({
      redis: async () => (up ? { ok: true, latencyMs: 1, time } : { ok: false, time }),
      database: async () => ({ ok: true, latencyMs: 1, time }),
    });
    expect(sample(await metrics.registry.metrics(), 'rampart_dependency_ping_seconds', { dependency: 'redis' })).toBe(0.001);
    up = false;
    const text = await metrics.registry.metrics();
    expect(sample(text, 'rampart_dependency_ping_seconds', { dependency: 'redis' })).toBeUndefined();
    expect(sample(text, 'rampart_dependency_up', { dependency: 'redis' })).toBe(0);
  });

  it('merge across PM2 instances as the worst view: down if any is down, the slowest round trip', async () => {
    const a = createMetrics();
    a.watchDependencies(probes({ ok: true, latencyMs: 1, time }, { ok: true, latencyMs: 30, time }));
    const b = createMetrics();
    b.watchDependencies(probes({ ok: false, time }, { ok: true, latencyMs: 4, time }));
    const merged = await AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]).metrics();
    expect(sample(merged, 'rampart_dependency_up', { dependency: 'redis' })).toBe(0);
    expect(sample(merged, 'rampart_dependency_up', { dependency: 'database' })).toBe(1);
    expect(sample(merged, 'rampart_dependency_ping_seconds', { dependency: 'database' })).toBe(0.03);
  });
});

describe('rampart_metrics_host_wide', () => {
  it('is 1 for a merged answer and 0 for one process answering alone', async () => {
    const { Registry } = await import('prom-client');
    for (const merged of [true, false]) {
      const registry = new Registry();
      hostWide(registry, merged);
      expect(await registry.metrics()).toMatch(new RegExp(`^rampart_metrics_host_wide ${merged ? 1 : 0}$`, 'm'));
    }
  });
});

describe('rampart_metrics_workers', () => {
  it('says how many instances were asked and how many answered, on a merged answer', async () => {
    const { Registry } = await import('prom-client');
    const registry = new Registry();
    mergedScrape(registry, 3, 2);
    const text = await registry.metrics();
    expect(sample(text, 'rampart_metrics_workers', { state: 'expected' })).toBe(3);
    expect(sample(text, 'rampart_metrics_workers', { state: 'answered' })).toBe(2);
    expect(text).toMatch(/^rampart_metrics_host_wide 1$/m);
  });
});
