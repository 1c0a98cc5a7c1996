// Unit tests for middleware plumbing whose mistakes would not show in a happy-path request.
import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { matchedData, validationResult } from 'express-validator';
import { describe, expect, it } from 'vitest';
import { mountAt } from '../../src/middleware/routing';
import { series } from '../../src/middleware/series';
import { hasItemId, itemIdParam, listItemsQuery, parseListQuery } from '../../src/modules/items/schema';

describe('validate() fast path for item ids', () => {
  const chainAccepts = async (id: string) => {
    const req = { params: { id } } as unknown as Request;
    for (const chain of itemIdParam) await chain.run(req);
    return validationResult(req).isEmpty();
  };
  const candidates = [
    randomUUID(),
    randomUUID().toUpperCase(),
    '00000000-0000-0000-0000-000000000000',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
    '6ba7b810-9dad-11d1-80b4-00c04fd430c8', // v1
    '017f22e2-79b0-7cc3-98c4-dc0c0c07398f', // v7
    '6ba7b810-9dad-01d1-80b4-00c04fd430c8', // version 0
    '6ba7b810-9dad-91d1-80b4-00c04fd430c8', // version 9
    '6ba7b810-9dad-41d1-c0b4-00c04fd430c8', // variant c
    '6ba7b8109dad11d180b400c04fd430c8',
    `${randomUUID()} `,
    ` ${randomUUID()}`,
    `${randomUUID()}\n`,
    `{${randomUUID()}}`,
    'not-a-uuid',
    '',
    'g'.repeat(8) + '-0000-4000-8000-' + '0'.repeat(12),
  ];
  it.each(candidates)('agrees with the express-validator chain on %j', async (id) => {
    expect(hasItemId({ params: { id } } as unknown as Request)).toBe(await chainAccepts(id));
  });
});

describe('validate() fast path for the list query', () => {
  const chains = async (query: Record<string, unknown>) => {
    const req = { query: { ...query } } as unknown as Request;
    for (const chain of listItemsQuery) await chain.run(req);
    return { accepts: validationResult(req).isEmpty(), values: matchedData(req, { locations: ['query'] }) };
  };
  // What clients normally send: the fast path must take these (or it saves nothing).
  const typical = [{}, { page: '2' }, { limit: '100' }, { page: '3', limit: '10', sort: '-price', tag: 'bench' }, { sort: 'name' }, { tag: 'café au lait' }, { page: '1000000' }, { other: 'ignored' }];
  const unusual = [
    { page: '0' }, { page: '1000001' }, { page: '007' }, { page: '+5' }, { page: '-1' }, { page: ' 1' }, { page: '1.0' }, { page: '1e3' }, { page: '' },
    { page: '99999999999999999999' }, { page: ['1', '2'] }, { limit: '0' }, { limit: '101' }, { limit: '05' }, { limit: 'ten' }, { sort: 'bogus' },
    { sort: '' }, { sort: 'PRICE' }, { tag: '' }, { tag: 'x'.repeat(50) }, { tag: 'x'.repeat(51) }, { tag: '😀'.repeat(25) }, { tag: '😀'.repeat(26) },
    { tag: 'a\uFE0F' }, { tag: '\uD800' }, { tag: ['a', 'b'] }, { tag: 'line\nbreak' },
  ];
  it.each(typical)('takes %j and parses it as the chains do', async (query) => {
    const fast = parseListQuery(query);
    expect(fast).toBeDefined();
    expect(await chains(query)).toEqual({ accepts: true, values: fast });
  });
  it.each(unusual)('never takes what the chains refuse or convert otherwise: %j', async (query) => {
    const fast = parseListQuery(query);
    if (fast !== undefined) expect(await chains(query)).toEqual({ accepts: true, values: fast });
  });
  it('leaves to the chains whatever it is unsure of (the chains still decide)', () => {
    expect([{ page: '007' }, { tag: '😀'.repeat(25) }, { page: ['1', '2'] }, { page: '1000001' }].map(parseListQuery)).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('series()', () => {
  const run = (handlers: Parameters<typeof series>) =>
    new Promise<unknown[]>((resolve) => {
      const order: unknown[] = [];
      const next = ((err?: unknown) => resolve([...order, ['next', err]])) as NextFunction;
      series(...handlers.map((h, i) => (req: Request, res: Response, n: NextFunction) => (order.push(i), h(req, res, n))))({} as Request, {} as Response, next);
    });

  it('runs every handler in order, then the enclosing next with no error', async () => {
    expect(await run([(_q, _s, n) => n(), async (_q, _s, n) => n(), (_q, _s, n) => setImmediate(n)])).toEqual([0, 1, 2, ['next', undefined]]);
  });

  it('stops at an error passed to next, thrown, or rejected', async () => {
    const boom = new Error('boom');
    expect(await run([(_q, _s, n) => n(boom), (_q, _s, n) => n()])).toEqual([0, ['next', boom]]);
    expect(await run([() => { throw boom; }, (_q, _s, n) => n()])).toEqual([0, ['next', boom]]);
    expect(await run([async () => { throw boom; }, (_q, _s, n) => n()])).toEqual([0, ['next', boom]]);
  });

  it("hands next('route') and next('router') to the enclosing router", async () => {
    expect(await run([(_q, _s, n) => n('route'), (_q, _s, n) => n()])).toEqual([0, ['next', 'route']]);
    expect(await run([(_q, _s, n) => n('router')])).toEqual([0, ['next', 'router']]);
  });

  it('does nothing more when a handler answers without calling next', async () => {
    const calls: unknown[] = [];
    series((_q, _s, _n) => calls.push('answered'), () => calls.push('never'))({} as Request, {} as Response, (() => calls.push('next')) as NextFunction);
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['answered']);
  });
});

describe('mountAt()', () => {
  const routed = (base: string, path: string) => {
    let handled = false;
    mountAt(base, () => {
      handled = true;
    })({ path } as Request, {} as Response, (() => undefined) as NextFunction);
    return handled;
  };

  it('takes the base path itself and everything below it, in any letter case, like an Express mount', () => {
    for (const path of ['/api/v1/items', '/api/v1/items/', '/api/v1/items/42', '/API/V1/Items/42/x']) expect(routed('/api/v1/items', path), path).toBe(true);
  });

  it('leaves other paths, including ones that merely start with the same letters', () => {
    for (const path of ['/api/v1/itemsx', '/api/v1/item', '/api/v1', '/', '/x/api/v1/items']) expect(routed('/api/v1/items', path), path).toBe(false);
  });

  it('treats the base literally', () => {
    expect(routed('/v1.0', '/v1.0/x')).toBe(true);
    expect(routed('/v1.0', '/v1x0/x')).toBe(false);
  });
});
