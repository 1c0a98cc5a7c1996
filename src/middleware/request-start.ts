// The first middleware of every request, kept as one function because it runs for everything
// (health polls included): request id and its async context, the precomputed security headers,
// and Connection: close while the process drains.
import type { RequestHandler, Response } from 'express';
import onHeaders from 'on-headers';
import type { Lifecycle } from '../lib/lifecycle';
import { requestId } from './request-id';
import { computeSecurityHeaders } from './security-headers';

export function requestStart(lifecycle: Lifecycle): RequestHandler {
  const headers = computeSecurityHeaders();
  const identify = requestId();
  // Decided when headers go out, so requests already in flight when the signal came are covered.
  const closeWhileDraining = (res: Response) =>
    onHeaders(res, () => {
      if (lifecycle.draining) res.setHeader('Connection', 'close');
    });
  return (req, res, next) => {
    for (const [name, value] of headers) res.setHeader(name, value);
    closeWhileDraining(res);
    identify(req, res, next);
  };
}
