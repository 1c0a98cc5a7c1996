// Mounting module routers, 404 for unknown paths and 405 (with Allow) for known paths with an
// unsupported method.
import type { RequestHandler, Router } from 'express';
import { AppError } from '../lib/errors';

/**
 * Hands requests under `base` (the path itself or below it), or under any of several bases, to
 * `handler`; others go on. The module mechanism (src/http/module.ts) registers routes with full
 * paths (`${base}/:id`) and mounts with this instead of app.use(base, router): Express's mount
 * rewrites req.url on the way in and back on the way out, and the router re-parses it both times,
 * on every request. Full paths also make req.route.path the whole template, which is what the
 * metrics label by.
 */
export function mountAt(base: string | readonly string[], handler: RequestHandler): RequestHandler {
  const bases = typeof base === 'string' ? [base] : base;
  // Case-insensitive, like Express's own path matching.
  // eslint-disable-next-line security/detect-non-literal-regexp -- built from the modules' base paths (code), escaped
  const under = new RegExp(`^(?:${bases.map((b) => b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?:/|$)`, 'i');
  return (req, res, next) => (under.test(req.path) ? handler(req, res, next) : next());
}

interface LayerLike {
  route?: { path: string; methods: Record<string, boolean> };
}

/**
 * Call after a router's routes are declared: each path answers methods it does not support with
 * 405 and an Allow header listing those it does (HEAD comes with GET; OPTIONS is CORS's). A path
 * may be declared by several routes (GET and PATCH separately), so methods are gathered per path
 * and the 405 handler goes after all of them. `fromLayer` limits this to the routes declared from
 * that position of the stack on (routes added straight to the app's router among other layers).
 */
export function rejectOtherMethods(router: Router, fromLayer = 0): Router {
  const byPath = new Map<string, Set<string>>();
  for (const layer of (router.stack as LayerLike[]).slice(fromLayer)) {
    if (!layer.route) continue;
    const methods = byPath.get(layer.route.path) ?? new Set<string>();
    for (const m of Object.keys(layer.route.methods)) if (m !== '_all') methods.add(m.toUpperCase());
    byPath.set(layer.route.path, methods);
  }
  for (const [path, methods] of byPath) {
    if (methods.has('GET')) methods.add('HEAD');
    const allow = [...methods].join(', ');
    router.all(path, (_req, _res, next) => next(new AppError('method_not_allowed', { headers: { Allow: allow } })));
  }
  return router;
}

export function notFound(): RequestHandler {
  return (_req, _res, next) => next(new AppError('not_found'));
}
