// Host-wide metrics under PM2 cluster mode. prom-client's AggregatorRegistry expects code in the
// cluster primary, which PM2 does not run, so a scrape would answer for one random worker and
// counters would jump between scrapes. Instead the worker that receives the scrape asks every
// instance of its app over the PM2 bus for its metrics (as JSON) and merges the replies with
// AggregatorRegistry.aggregate(): counters and histograms are summed, gauges summed or averaged.
import { AggregatorRegistry, Gauge, type Registry, type RegistryContentType } from 'prom-client';
import type { Logger } from './logger';

const REQUEST_TOPIC = 'rampart:metrics:request';
// PM2 forwards a worker's message to the bus as {data, process} under the event named by its
// `type` (a `topic` would be dropped), so the reply is recognised by its type.
const REPLY_TYPE = 'rampart:metrics:reply';
const REPLY_TIMEOUT_MS = 1500;

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

interface Pm2Packet {
  topic?: string;
  data?: { id?: string; metrics?: MetricsJson; from?: number };
}

/**
 * Adds rampart_metrics_host_wide to a scrape's registry: 1 for every instance's figures merged, 0
 * for one process's figures answered because the merge failed.
 */
export function hostWide(registry: Registry<RegistryContentType>, merged: boolean): void {
  new Gauge({
    name: 'rampart_metrics_host_wide',
    help: "Whether this scrape merged every PM2 instance's metrics (1) or fell back to one process's (0)",
    registers: [registry],
  }).set(merged ? 1 : 0);
}

/**
 * How complete a merged scrape is, for the alert on one that misses workers: the instances asked
 * (expected) and those that answered in time (answered).
 */
export function mergedScrape(registry: Registry<RegistryContentType>, expected: number, answered: number): void {
  const workers = new Gauge({
    name: 'rampart_metrics_workers',
    help: 'Instances asked for their metrics at this scrape (expected) and those that answered in time (answered)',
    labelNames: ['state'],
    registers: [registry],
  });
  workers.set({ state: 'expected' }, expected);
  workers.set({ state: 'answered' }, answered);
  hostWide(registry, true);
}

/** True when this process is a PM2 cluster-mode instance. */
export function underPm2Cluster(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.pm_id !== undefined && env.exec_mode === 'cluster_mode' && typeof process.send === 'function';
}

/** Every instance answers metric requests from its siblings (call once per process). */
export function answerMetricRequests(registry: Registry, logger: Logger): void {
  process.on('message', (packet: Pm2Packet) => {
    if (packet?.topic !== REQUEST_TOPIC || !packet.data?.id) return;
    registry.getMetricsAsJSON().then(
      (metrics) => process.send?.({ type: REPLY_TYPE, data: { id: packet.data!.id, from: Number(process.env.pm_id), metrics } }),
      (err: unknown) => logger.error('metrics collection failed', { error: err }),
    );
  });
}

interface Pm2Api {
  connect(cb: (err?: Error) => void): void;
  list(cb: (err: Error | null, list: { pm_id?: number; name?: string; pm2_env?: { status?: string } }[]) => void): void;
  launchBus(cb: (err: Error | null, bus: { on(event: string, handler: (packet: Pm2Packet & { process?: { pm_id?: number } }) => void): void }) => void): void;
  sendDataToProcessId(id: number, packet: object, cb: (err?: Error) => void): void;
}

/** Collects and merges the metrics of every online instance of this app. */
export class ClusterMetrics {
  private ready: Promise<Pm2Api> | undefined;
  private readonly pending = new Map<string, { replies: MetricsJson[]; done: () => void; expected: number }>();
  private sequence = 0;

  constructor(
    private readonly appName: string,
    private readonly logger: Logger,
  ) {}

  private connect(): Promise<Pm2Api> {
    this.ready ??= new Promise<Pm2Api>((resolve, reject) => {
      // Loaded lazily: only processes that actually run under PM2 pay for its client.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy, synchronous load inside the connect callback (see above)
      const pm2 = require('pm2') as Pm2Api;
      pm2.connect((err) => {
        if (err) return reject(err);
        pm2.launchBus((busErr, bus) => {
          if (busErr) return reject(busErr);
          bus.on(REPLY_TYPE, (packet) => {
            if (!packet.data?.id || !packet.data.metrics) return;
            const waiting = this.pending.get(packet.data.id);
            if (!waiting) return;
            waiting.replies.push(packet.data.metrics);
            if (waiting.replies.length >= waiting.expected) waiting.done();
          });
          resolve(pm2);
        });
      });
    }).catch((err: unknown) => {
      this.ready = undefined; // try again at the next scrape
      throw err;
    });
    return this.ready;
  }

  /** Prometheus text for the whole host, and how many instances answered. */
  async collect(): Promise<{ text: string; contentType: string; instances: number; expected: number }> {
    const pm2 = await this.connect();
    const list = await new Promise<{ pm_id?: number; name?: string; pm2_env?: { status?: string } }[]>((resolve, reject) =>
      pm2.list((err, l) => (err ? reject(err) : resolve(l))),
    );
    const ids = list.filter((p) => p.name === this.appName && p.pm2_env?.status === 'online' && p.pm_id !== undefined).map((p) => p.pm_id!);
    const id = `${process.pid}-${++this.sequence}`;
    const replies: MetricsJson[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, REPLY_TIMEOUT_MS);
      this.pending.set(id, { replies, expected: ids.length, done: () => (clearTimeout(timer), resolve()) });
      for (const pmId of ids) {
        pm2.sendDataToProcessId(pmId, { type: 'process:msg', topic: REQUEST_TOPIC, data: { id } }, (err) => {
          if (err) this.logger.warn('metrics request to an instance failed', { pmId, error: err.message });
        });
      }
    });
    this.pending.delete(id);
    const merged = AggregatorRegistry.aggregate(replies);
    mergedScrape(merged, ids.length, replies.length);
    return { text: await merged.metrics(), contentType: merged.contentType, instances: replies.length, expected: ids.length };
  }
}
