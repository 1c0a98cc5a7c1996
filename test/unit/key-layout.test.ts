// The key layout on its own (src/lib/key-layout.ts): the names, which keys share a hash tag, and
// when the transition from the untagged layout of earlier releases runs. Sessions' use of both
// layouts is in sessions.test.ts; the layout in real Redis in test/integration/key-layout.test.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { KeyValueStore } from '../../src/lib/store/types';
import { fresh } from '../helpers/fresh';

const load = () =>
  fresh(async () => ({
    layout: await import('../../src/lib/key-layout.js'),
    store: await import('../../src/lib/store/memory-store.js'),
  }));

const DAY = 86_400_000;
const MAX_AGE = 30 * DAY;
const T0 = Date.UTC(2026, 0, 1);

/** What Redis Cluster hashes: the first `{...}` with something inside, else the whole key. */
const slotPart = (key: string) => /\{([^}]+)\}/.exec(key)?.[1] ?? key;

afterEach(() => {
  vi.useRealTimers();
});

describe('key names', () => {
  it('tags the keys of one session, of one user and of one cache namespace alike', async () => {
    const { layout } = await load();
    const k = layout.SESSION_KEYS;
    expect([k.session('S'), k.lastUsed('S'), k.refresh('S', 'H'), k.blocked('S', 'J'), k.generation('U'), k.index('U')]).toEqual([
      'sess:{s:S}',
      'slast:{s:S}',
      'rt:{s:S}:H',
      'bl:{s:S}:J',
      'ugen:{u:U}',
      'usess:{u:U}',
    ]);
    expect(new Set([k.session('S'), k.lastUsed('S'), k.refresh('S', 'H'), k.blocked('S', 'J')].map(slotPart))).toEqual(new Set(['s:S']));
    expect(new Set([k.generation('U'), k.index('U')].map(slotPart))).toEqual(new Set(['u:U']));
    // A user id equal to a session id still hashes apart from it: the tags say what they tag.
    expect(slotPart(k.session('X'))).not.toBe(slotPart(k.generation('X')));
    const c = layout.CACHE_KEYS;
    expect([c.version('item:1'), c.entry('item:1', 'items:one:1')]).toEqual(['ver:{c:item:1}', 'resp:{c:item:1}:items:one:1']);
    expect(slotPart(c.version('items'))).toBe(slotPart(c.entry('items', 'items:list:page=1')));
  });

  it('spells the untagged layout as the releases before it wrote it', async () => {
    const { layout } = await load();
    const k = layout.LEGACY_SESSION_KEYS;
    expect([k.session('S'), k.lastUsed('S'), k.refresh('S', 'H'), k.blocked('S', 'J'), k.generation('U'), k.index('U')]).toEqual([
      'sess:S',
      'slast:S',
      'rt:H',
      'bl:J',
      'ugen:U',
      'usess:U',
    ]);
    expect(layout.LEGACY_CACHE_KEYS.version('item:1')).toBe('ver:item:1');
  });
});

describe('LayoutTransition', () => {
  it('records its start once, for a year at least, and runs for the longest session plus a day', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date', 'setInterval', 'clearInterval'] });
    const { layout, store } = await load();
    const kv = new store.MemoryStore('t:');
    const ttls: number[] = [];
    const watched = Object.assign(Object.create(kv) as KeyValueStore, {
      setIfAbsent: (key: string, value: string, ttlMs: number) => (ttls.push(ttlMs), kv.setIfAbsent(key, value, ttlMs)),
    });
    const transition = await layout.LayoutTransition.start(watched, MAX_AGE);
    expect(ttls).toEqual([365 * DAY]);
    expect(await kv.get('keylayout:tagged')).toBe(String(T0));
    vi.setSystemTime(T0 + MAX_AGE + DAY - 1);
    expect(transition.active).toBe(true);
    vi.setSystemTime(T0 + MAX_AGE + DAY);
    expect(transition.active).toBe(false);
    transition.stop();
  });

  it('keeps the marker twice the transition when that is longer than a year', async () => {
    const { layout, store } = await load();
    const kv = new store.MemoryStore('t:');
    const ttls: number[] = [];
    const watched = Object.assign(Object.create(kv) as KeyValueStore, {
      setIfAbsent: (key: string, value: string, ttlMs: number) => (ttls.push(ttlMs), kv.setIfAbsent(key, value, ttlMs)),
    });
    (await layout.LayoutTransition.start(watched, 400 * DAY)).stop();
    expect(ttls).toEqual([2 * 401 * DAY]);
  });

  it('starts from now when the recorded start is not a time', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date'] });
    for (const recorded of ['garbage', '0', '-5']) {
      const { layout, store } = await load();
      const kv = new store.MemoryStore('t:');
      await kv.set('keylayout:tagged', recorded, DAY);
      const transition = await layout.LayoutTransition.start(kv, MAX_AGE);
      transition.stop();
      vi.setSystemTime(T0 + MAX_AGE + DAY - 1);
      expect(transition.active, recorded).toBe(true);
      vi.setSystemTime(T0);
    }
  });

  it('looks again every ten minutes while it runs, and stops looking once it has ended', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date', 'setInterval', 'clearInterval'] });
    const { layout, store } = await load();
    const kv = new store.MemoryStore('t:');
    let reads = 0;
    const watched = Object.assign(Object.create(kv) as KeyValueStore, { get: (key: string) => (reads++, kv.get(key)) });
    const storeTimers = vi.getTimerCount(); // the in-process store's sweeper
    const transition = await layout.LayoutTransition.start(watched, MAX_AGE);
    const afterStart = reads;
    await vi.advanceTimersByTimeAsync(10 * 60_000 - 1);
    expect(reads).toBe(afterStart);
    await vi.advanceTimersByTimeAsync(1);
    expect(reads).toBe(afterStart + 1);
    // Another process ended the transition early (an operator deleted the old layout and said so).
    await kv.set('keylayout:tagged', 'not-needed', DAY);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(transition.active).toBe(false);
    const ended = reads;
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(reads).toBe(ended);
    expect(vi.getTimerCount()).toBe(storeTimers);
  });

  it('sets no timer where nothing is needed, and none() never looks at all', async () => {
    vi.useFakeTimers({ now: T0, toFake: ['Date', 'setInterval', 'clearInterval'] });
    const { layout, store } = await load();
    const kv = new store.MemoryStore('t:');
    const storeTimers = vi.getTimerCount();
    const transition = await layout.LayoutTransition.start(kv, MAX_AGE, { findOldLayout: async () => false });
    expect(transition.active).toBe(false);
    expect(vi.getTimerCount()).toBe(storeTimers);
    const none = layout.LayoutTransition.none();
    await none.check();
    expect(none.active).toBe(false);
  });
});
