// The load monitor's checks, each on its own, with a clock the test moves (and one test with the
// real clock: a busy event loop must be seen while it is still busy).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LoadMonitor, SHED_REASONS, type LoadLimits, type LoadMonitorClock } from '../../src/lib/load-monitor';

const OFF: LoadLimits = { maxEventLoopDelayMs: 0, maxInFlight: 0, maxHeapUsedPercent: 0 };

function fakeClock(heap = 10): LoadMonitorClock & { t: number; heap: number } {
  const clock = { t: 1000, heap, now: () => clock.t, heapUsedPercent: () => clock.heap };
  return clock;
}

const monitors: LoadMonitor[] = [];
function monitor(limits: Partial<LoadLimits>, clock?: LoadMonitorClock): LoadMonitor {
  const m = new LoadMonitor({ ...OFF, ...limits }, clock);
  monitors.push(m);
  return m;
}

afterEach(() => {
  for (const m of monitors.splice(0)) m.stop();
  vi.useRealTimers();
});

describe('LoadMonitor', () => {
  it('admits everything with every check off, and never starts its timer', () => {
    vi.useFakeTimers();
    const m = monitor({}, fakeClock(100));
    m.inFlight = 1_000_000;
    expect(m.overloaded()).toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses at the in-flight limit, not below it', () => {
    const m = monitor({ maxInFlight: 3 });
    m.inFlight = 2;
    expect(m.overloaded()).toBeUndefined();
    m.inFlight = 3;
    expect(m.overloaded()).toBe('in_flight');
  });

  it('refuses when the heap reaches its percentage, read when sampling starts and every tenth sample', () => {
    vi.useFakeTimers();
    const clock = fakeClock(89);
    const m = monitor({ maxHeapUsedPercent: 90 }, clock);
    expect(m.overloaded()).toBeUndefined();
    clock.heap = 90;
    // Not read again until the tenth sample (25 ms each).
    for (let i = 0; i < 9; i++) {
      clock.t += 25;
      vi.advanceTimersByTime(25);
    }
    expect(m.overloaded()).toBeUndefined();
    clock.t += 25;
    vi.advanceTimersByTime(25);
    expect(m.overloaded()).toBe('heap');
    clock.heap = 50;
    for (let i = 0; i < 10; i++) {
      clock.t += 25;
      vi.advanceTimersByTime(25);
    }
    expect(m.overloaded()).toBeUndefined();
  });

  it('refuses while the loop was late at the last sample and is late again now, by more than the limit', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const m = monitor({ maxEventLoopDelayMs: 100 }, clock);
    expect(m.overloaded()).toBeUndefined(); // starts sampling: due at t+25
    // One long turn: overdue, but the last sample was on time. Nothing is refused.
    clock.t += 126;
    expect(m.eventLoopDelayMs()).toBe(101);
    expect(m.overloaded()).toBeUndefined();
    vi.advanceTimersByTime(25); // the timer fires 101 ms late: due again at t+25
    expect(m.eventLoopDelayMs()).toBe(101);
    expect(m.overloaded()).toBeUndefined(); // late last time, on time now
    clock.t += 125; // overdue by exactly the limit: not more
    expect(m.overloaded()).toBeUndefined();
    clock.t += 1;
    expect(m.overloaded()).toBe('event_loop_delay');
    // A sample exactly at the limit does not count as late.
    vi.advanceTimersByTime(25); // fired 101 ms late
    clock.t += 125;
    vi.advanceTimersByTime(25); // fired exactly 100 ms late
    clock.t += 200;
    expect(m.overloaded()).toBeUndefined();
    // A turn on time clears it.
    vi.advanceTimersByTime(25); // fired 200 ms late
    clock.t += 200;
    expect(m.overloaded()).toBe('event_loop_delay');
    vi.advanceTimersByTime(25); // fired 200 ms late
    clock.t += 26;
    vi.advanceTimersByTime(25); // fired 1 ms late
    expect(m.eventLoopDelayMs()).toBe(1);
    clock.t += 500;
    expect(m.overloaded()).toBeUndefined();
  });

  it('checks in-flight first, then delay, then heap', () => {
    vi.useFakeTimers();
    const clock = fakeClock(99);
    const m = monitor({ maxInFlight: 1, maxEventLoopDelayMs: 10, maxHeapUsedPercent: 90 }, clock);
    m.inFlight = 1;
    expect(m.overloaded()).toBe('in_flight');
    m.inFlight = 0;
    clock.t += 100;
    vi.advanceTimersByTime(25); // 75 ms late
    clock.t += 100;
    expect(m.overloaded()).toBe('event_loop_delay');
    vi.advanceTimersByTime(25);
    clock.t += 25;
    vi.advanceTimersByTime(25);
    expect(m.eventLoopDelayMs()).toBe(0);
    expect(m.overloaded()).toBe('heap');
  });

  it('sees a busy event loop on the real clock, turn after turn, then lets go once it turns freely', async () => {
    const m = monitor({ maxEventLoopDelayMs: 50 });
    expect(m.overloaded()).toBeUndefined();
    const busy = (ms: number) => {
      const until = performance.now() + ms;
      while (performance.now() < until) {
        // a turn of the loop that takes this long
      }
    };
    busy(150);
    expect(m.overloaded()).toBeUndefined(); // one slow turn refuses nothing
    // The next turn's timers phase takes the sample (late); two check phases later it has run.
    for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
    busy(150);
    expect(m.overloaded()).toBe('event_loop_delay');
    // Free turns: within a second the samples show a loop that is on time again.
    await vi.waitFor(() => expect(m.overloaded()).toBeUndefined(), { timeout: 2000, interval: 30 });
  });

  it('stop() ends sampling; a stopped monitor is never overdue', () => {
    vi.useFakeTimers();
    const clock = fakeClock();
    const m = monitor({ maxEventLoopDelayMs: 10 }, clock);
    m.overloaded();
    expect(vi.getTimerCount()).toBe(1);
    m.stop();
    expect(vi.getTimerCount()).toBe(0);
    clock.t += 1000;
    expect(m.eventLoopDelayMs()).toBe(0);
  });

  it('names its reasons as the metric labels them', () => {
    expect(SHED_REASONS).toEqual(['event_loop_delay', 'in_flight', 'heap']);
  });
});
