// req.ip, worked out once per request. Express derives it from the socket address, X-Forwarded-For
// and the trust proxy setting on every read, and a request reads it several times (access log,
// each rate limiter, morgan). The answer cannot change within a request, so the app's request
// prototype caches it on first read.
import type { Express, Request } from 'express';

const cached = Symbol('rampart.clientAddress');

export function memoizeClientAddress(app: Express): void {
  const expressRequest = Object.getPrototypeOf(app.request) as object;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- the getter is called with the request as `this` below
  const derive = Object.getOwnPropertyDescriptor(expressRequest, 'ip')?.get;
  if (!derive) throw new Error('express request has no ip getter; cannot memoize it');
  Object.defineProperty(app.request, 'ip', {
    configurable: true,
    enumerable: true,
    get(this: Request & { [cached]?: string | undefined }) {
      if (!(cached in this)) this[cached] = derive.call(this) as string | undefined;
      return this[cached];
    },
  });
}
