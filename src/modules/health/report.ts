// The /health/detailed report in the IETF health-check draft's shape (application/health+json):
// an overall status (pass, warn, fail) and, per component, observed values with units, times and
// their own status. Thresholds turn a slow but working dependency into "warn", not "fail".
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { ProbeResult } from '../../lib/probes';

export type Status = 'pass' | 'warn' | 'fail';

const WARN_THRESHOLDS = {
  redisMs: 50,
  databaseMs: 100,
  eventLoopLagMs: 100,
  heapRatio: 0.9,
} as const;

interface Check {
  componentType: string;
  observedValue?: number;
  observedUnit: string;
  status: Status;
  time: string;
  output?: string;
}

let loopDelay: IntervalHistogram | undefined;

/** Event-loop delay sampled continuously (cheap: a timer in libuv), read and reset per report. */
function eventLoopLagMs(): number {
  if (!loopDelay) {
    loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
    return 0;
  }
  const p99 = loopDelay.percentile(99) / 1e6;
  loopDelay.reset();
  return Math.round(p99 * 100) / 100;
}

/** Starts sampling at start-up, so the first report already has a window behind it. */
export function startEventLoopMonitor(): void {
  eventLoopLagMs();
}

function dependency(name: string, probe: ProbeResult, warnMs: number): Check {
  const slow = probe.ok && probe.latencyMs !== undefined && probe.latencyMs > warnMs;
  return {
    componentType: 'datastore',
    observedValue: probe.latencyMs,
    observedUnit: 'ms',
    status: !probe.ok ? 'fail' : slow ? 'warn' : 'pass',
    time: probe.time,
    ...(probe.error ? { output: `${name} ${probe.error}` } : slow ? { output: `slower than ${warnMs} ms` } : {}),
  };
}

export interface ReportInput {
  redis: ProbeResult;
  database: ProbeResult;
  draining: boolean;
  uptimeSeconds: number;
  version: string;
}

export function healthReport({ redis, database, draining, uptimeSeconds, version }: ReportInput): { status: Status; body: object } {
  const time = new Date().toISOString();
  const memory = process.memoryUsage();
  const heapLimit = getHeapStatistics().heap_size_limit;
  const lag = eventLoopLagMs();
  const checks: Record<string, Check[]> = {
    redis: [dependency('redis', redis, WARN_THRESHOLDS.redisMs)],
    database: [dependency('database', database, WARN_THRESHOLDS.databaseMs)],
    'eventloop:lag': [
      { componentType: 'system', observedValue: lag, observedUnit: 'ms', status: lag > WARN_THRESHOLDS.eventLoopLagMs ? 'warn' : 'pass', time },
    ],
    'memory:heapUsed': [
      {
        componentType: 'system',
        observedValue: memory.heapUsed,
        observedUnit: 'bytes',
        status: memory.heapUsed > heapLimit * WARN_THRESHOLDS.heapRatio ? 'warn' : 'pass',
        time,
      },
    ],
    'memory:rss': [{ componentType: 'system', observedValue: memory.rss, observedUnit: 'bytes', status: 'pass', time }],
    uptime: [{ componentType: 'system', observedValue: uptimeSeconds, observedUnit: 's', status: 'pass', time }],
  };
  const all = Object.values(checks)
    .flat()
    .map((c) => c.status);
  const status: Status = draining || all.includes('fail') ? 'fail' : all.includes('warn') ? 'warn' : 'pass';
  return {
    status,
    body: { status, version, serviceId: 'rampart', description: 'Rampart API', ...(draining ? { output: 'shutting down' } : {}), checks },
  };
}
