// How busy this process is, cheaply enough to ask on every request: event-loop delay, requests in
// flight and heap use, each against a limit from config (0 turns a check off).
//
// Event-loop delay is measured with a timer that is due every SAMPLE_MS: how late it fires is the
// delay of the last turn of the loop. A timer can only fire between turns, so a request asking in
// the middle of a long turn also looks at how overdue the timer is right now. Both must be over the
// limit: the loop was late at the last sample and is late again now. Under sustained overload that
// holds for every long turn, and the later requests of each are refused, which bounds the work any
// one turn admits; a single slow turn (a cold start compiling code, a major garbage collection, a
// noisy neighbour) refuses nothing.
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';

export interface LoadLimits {
  /** Refuse when the event loop runs this late (ms); 0: never. */
  readonly maxEventLoopDelayMs: number;
  /** Refuse when this many requests are being served already; 0: never. */
  readonly maxInFlight: number;
  /** Refuse when the used heap reaches this percentage of V8's heap limit; 0: never. */
  readonly maxHeapUsedPercent: number;
}

export type ShedReason = 'event_loop_delay' | 'in_flight' | 'heap';

/** The reasons a request can be refused for, as metric label values. */
export const SHED_REASONS: readonly ShedReason[] = ['event_loop_delay', 'in_flight', 'heap'];

const SAMPLE_MS = 25;
/** The heap is read every this many samples (getHeapStatistics is cheap, not free). */
const HEAP_EVERY = 10;

export interface LoadMonitorClock {
  now(): number;
  heapUsedPercent(): number;
}

const systemClock: LoadMonitorClock = {
  now: () => performance.now(),
  heapUsedPercent: () => {
    const heap = getHeapStatistics();
    return (heap.used_heap_size / heap.heap_size_limit) * 100;
  },
};

export class LoadMonitor {
  /** Requests admitted and not finished yet (kept by the admission middleware). */
  inFlight = 0;
  private delayMs = 0;
  private due = Infinity;
  private heapPercent = 0;
  private samples = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly limits: LoadLimits,
    private readonly clock: LoadMonitorClock = systemClock,
  ) {}

  /** The reason to refuse a request now, or undefined to admit it. Starts sampling on first use. */
  overloaded(): ShedReason | undefined {
    const { maxInFlight, maxEventLoopDelayMs, maxHeapUsedPercent } = this.limits;
    if (this.timer === undefined && (maxEventLoopDelayMs > 0 || maxHeapUsedPercent > 0)) this.start();
    if (maxInFlight > 0 && this.inFlight >= maxInFlight) return 'in_flight';
    if (maxEventLoopDelayMs > 0 && this.delayMs > maxEventLoopDelayMs && this.overdueMs() > maxEventLoopDelayMs) return 'event_loop_delay';
    if (maxHeapUsedPercent > 0 && this.heapPercent >= maxHeapUsedPercent) return 'heap';
    return undefined;
  }

  /** The last turn's delay, or how overdue the sampling timer is now if that is more (for the log). */
  eventLoopDelayMs(): number {
    return Math.max(this.delayMs, this.overdueMs());
  }

  private overdueMs(): number {
    return this.clock.now() - this.due;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due = Infinity;
  }

  private start(): void {
    this.heapPercent = this.clock.heapUsedPercent();
    this.schedule();
  }

  private schedule(): void {
    this.due = this.clock.now() + SAMPLE_MS;
    // unref: sampling never keeps a process alive (tests build many apps).
    this.timer = setTimeout(() => this.sample(), SAMPLE_MS).unref();
  }

  private sample(): void {
    this.delayMs = Math.max(0, this.clock.now() - this.due);
    this.samples += 1;
    if (this.samples % HEAP_EVERY === 0) this.heapPercent = this.clock.heapUsedPercent();
    this.schedule();
  }
}
