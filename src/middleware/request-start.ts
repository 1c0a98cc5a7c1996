// The first middleware of every request, kept as one function because it runs for everything
// (health polls included): request id and its async context, and the precomputed security headers.
// Connection: close while the process drains is hooked once on the app's response prototype.
import { ServerResponse } from 'node:http';
import type { Express, RequestHandler } from 'express';
import type { Lifecycle } from '../lib/lifecycle';
import { requestId } from './request-id';
import { computeSecurityHeaders } from './security-headers';

export function requestStart(): RequestHandler {
  const headers = computeSecurityHeaders();
  const identify = requestId();
  return (req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    identify(req, res, next);
  };
}

/**
 * While the process drains, every response says Connection: close, so keep-alive clients (nginx
 * included) move to another process. Decided when the headers go out, so requests already in flight
 * when the signal came are covered too. One override on the app's response prototype (what Express
 * gives every res) instead of a writeHead wrapper per request; wrappers installed later per request
 * (compression, morgan) call through to it.
 */
export function closeConnectionsWhileDraining(app: Express, lifecycle: Lifecycle): void {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the response as `this` (apply) below
  const writeHead = ServerResponse.prototype.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  (app.response as unknown as { writeHead: typeof writeHead }).writeHead = function writeHeadWhileDraining(this: ServerResponse, ...args: unknown[]) {
    if (lifecycle.draining) this.setHeader('Connection', 'close');
    return writeHead.apply(this, args);
  };
}
