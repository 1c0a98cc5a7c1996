// The items resource: public, cached reads; authenticated, owner-only writes that invalidate.
import type { RequestHandler } from 'express';
import { Router } from 'express';
import { matchedData } from 'express-validator';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import type { ResponseCache } from '../../middleware/response-cache';
import { rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';
import { deleteItem, findItem, insertItem, listItems, updateItem, type ItemInput, type SortKey } from './repository';
import { createItemBody, hasItemId, itemIdParam, listItemsQuery, parseListQuery, updateItemBody, type ListQuery } from './schema';

interface ListParams {
  page: number;
  limit: number;
  sort: SortKey;
  tag?: string;
}

/** Validated list parameters with defaults applied: also the cache key, so `?` and `?page=1` share it. */
function listParams(req: Parameters<RequestHandler>[0]): ListParams {
  // The fast path's parse when it recognised the query, else what the chains matched and converted.
  const q = parseListQuery(req.query) ?? (matchedData(req, { locations: ['query'] }) as ListQuery);
  return { page: q.page ?? 1, limit: q.limit ?? 20, sort: q.sort ?? '-createdAt', tag: q.tag };
}

const LIST_TTL_MS = 30_000;
const ITEM_TTL_MS = 60_000;
// Every list page depends on "items"; one item's page also on "item:<id>".
const itemNamespaces = (id: string) => ['items', `item:${id}`];

/** Routes under `base` (/api/v1/items), declared with full paths (see mountAt). */
export function itemsRouter(base: string, db: Database, cache: ResponseCache, authenticate: RequestHandler): Router {
  const router = Router();

  const cachedList = cache.middleware({
    name: 'items:list',
    ttlMs: LIST_TTL_MS,
    namespaces: () => ['items'],
    key: (req) => {
      const p = listParams(req);
      return `page=${p.page}&limit=${p.limit}&sort=${p.sort}&tag=${encodeURIComponent(p.tag ?? '')}`;
    },
  });
  const cachedItem = cache.middleware({
    name: 'items:one',
    ttlMs: ITEM_TTL_MS,
    namespaces: (req) => [`item:${String(req.params.id)}`],
    key: (req) => String(req.params.id),
  });

  router.get(base, validate(listItemsQuery, { passes: (req) => parseListQuery(req.query) !== undefined }), cachedList, async (req, res) => {
    const params = listParams(req);
    const { items, total } = await listItems(db, params);
    res.json({ items, page: params.page, limit: params.limit, total });
  });

  router.get(`${base}/:id`, validate(itemIdParam, { passes: hasItemId }), cachedItem, async (req, res) => {
    const item = await findItem(db, String(req.params.id));
    if (!item) throw new AppError('not_found');
    res.json({ item });
  });

  router.post(base, authenticate, validate(createItemBody), async (req, res) => {
    const input = matchedData(req, { locations: ['body'] }) as Required<Pick<ItemInput, 'name' | 'price'>> & ItemInput;
    const item = await insertItem(db, req.auth!.sub, input);
    await cache.invalidate(itemNamespaces(item.id));
    res.status(201).json({ item });
  });

  /** Loads the item and checks ownership: 404 when absent, 403 when someone else's. */
  const ownedItem = async (req: Parameters<RequestHandler>[0]) => {
    const item = await findItem(db, String(req.params.id));
    if (!item) throw new AppError('not_found');
    if (item.ownerId !== req.auth!.sub) throw new AppError('forbidden');
    return item;
  };

  router.patch(`${base}/:id`, authenticate, validate([...itemIdParam, ...updateItemBody]), async (req, res) => {
    const existing = await ownedItem(req);
    const input = matchedData(req, { locations: ['body'] }) as ItemInput;
    const item = await updateItem(db, existing.id, input);
    if (!item) throw new AppError('not_found');
    await cache.invalidate(itemNamespaces(item.id));
    res.json({ item });
  });

  router.delete(`${base}/:id`, authenticate, validate(itemIdParam, { passes: hasItemId }), async (req, res) => {
    const existing = await ownedItem(req);
    if (!(await deleteItem(db, existing.id))) throw new AppError('not_found');
    await cache.invalidate(itemNamespaces(existing.id));
    res.status(204).end();
  });

  return rejectOtherMethods(router);
}
