// Several middleware functions run as one router layer. Express pays for every layer a request
// visits (a path match, fresh params objects, a closure), so the middleware every API request
// passes through is mounted as one layer instead of seven.
import type { NextFunction, Request, RequestHandler, Response } from 'express';

type Handler = (req: Request, res: Response, next: NextFunction) => unknown;

const isThenable = (value: unknown): value is PromiseLike<unknown> => typeof (value as PromiseLike<unknown> | null)?.then === 'function';

/**
 * Runs the handlers in order, each calling `next` to go on, as Express would: an error passed to
 * `next`, thrown, or a rejected promise leaves the series for the error handlers; `next('route')`
 * and `next('router')` are handed to the enclosing router unchanged.
 */
export function series(...handlers: Handler[]): RequestHandler {
  return (req, res, next) => {
    let index = 0;
    const step = (err?: unknown): void => {
      if (err) return next(err);
      if (index === handlers.length) return next();
      const handler = handlers[index++]!;
      try {
        const result = handler(req, res, step);
        if (isThenable(result)) result.then(undefined, (e: unknown) => step(e || new Error('Rejected promise')));
      } catch (e) {
        step(e);
      }
    };
    step();
  };
}
