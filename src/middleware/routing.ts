// 404 for unknown paths and 405 (with Allow) for known paths with an unsupported method.
import type { RequestHandler, Router } from 'express';
import { AppError } from '../lib/errors';

interface RouteLike {
  path: string;
  methods: Record<string, boolean>;
  all(handler: RequestHandler): unknown;
}
interface LayerLike {
  route?: RouteLike;
}

/**
 * Call after a router's routes are declared: every route answers other methods with 405 and an
 * Allow header listing what it does support (HEAD comes with GET, OPTIONS is answered by CORS).
 */
export function rejectOtherMethods(router: Router): Router {
  for (const layer of router.stack as LayerLike[]) {
    const route = layer.route;
    if (!route) continue;
    const methods = Object.keys(route.methods)
      .filter((m) => m !== '_all')
      .map((m) => m.toUpperCase());
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.push('HEAD');
    const allow = methods.join(', ');
    route.all((_req, _res, next) => next(new AppError('method_not_allowed', { headers: { Allow: allow } })));
  }
  return router;
}

export function notFound(): RequestHandler {
  return (_req, _res, next) => next(new AppError('not_found'));
}
