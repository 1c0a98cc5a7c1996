// Unit tests for middleware plumbing whose mistakes would not show in a happy-path request.
import type { NextFunction, Request, Response } from 'express';
import { describe, expect, it } from 'vitest';
import { mountAt } from '../../src/middleware/routing';
import { series } from '../../src/middleware/series';

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
    expect(
      await run([
        () => {
          throw boom;
        },
        (_q, _s, n) => n(),
      ]),
    ).toEqual([0, ['next', boom]]);
    expect(
      await run([
        async () => {
          throw boom;
        },
        (_q, _s, n) => n(),
      ]),
    ).toEqual([0, ['next', boom]]);
  });

  it("hands next('route') and next('router') to the enclosing router", async () => {
    expect(await run([(_q, _s, n) => n('route'), (_q, _s, n) => n()])).toEqual([0, ['next', 'route']]);
    expect(await run([(_q, _s, n) => n('router')])).toEqual([0, ['next', 'router']]);
  });

  it('does nothing more when a handler answers without calling next', async () => {
    const calls: unknown[] = [];
    series(
      (_q, _s, _n) => calls.push('answered'),
      () => calls.push('never'),
    )({} as Request, {} as Response, (() => calls.push('next')) as NextFunction);
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
