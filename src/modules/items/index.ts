// The items resource: public, cached reads; authenticated, owner-only writes that invalidate.
import { AppError } from '../../lib/errors';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';
import type { Queryable } from '../../lib/db';
import type { ResponseCache } from '../../middleware/response-cache';
import { deleteItem, deleteItemsOf, findItem, insertItem, listItems, updateItem, type Item } from './repository';
import { createItemBody, itemPage, itemParams, itemResponse, listQuery, updateItemBody } from './schema';

const LIST_TTL_MS = 30_000;
const ITEM_TTL_MS = 60_000;
// Every list page depends on "items"; one item's page also on "item:<id>".
const itemNamespaces = (id: string) => ['items', `item:${id}`];

/**
 * Account deletion, inside the caller's transaction: deletes the owner's items (the database would
 * cascade them too; deleting them here gives their ids) and returns what to run once the
 * transaction has committed: the invalidation of their cached reads on every worker. Invalidating
 * before the commit would let a read in between cache the rows again.
 */
export async function removeItemsOf(tx: Queryable, cache: ResponseCache, ownerId: string): Promise<() => Promise<void>> {
  const ids = await deleteItemsOf(tx, ownerId);
  return async () => {
    if (ids.length > 0) await cache.invalidate(['items', ...ids.map((id) => `item:${id}`)]);
  };
}

export const itemsModule = defineModule({
  name: 'items',
  base: '/api/v1/items',
  tag: { name: 'Items', description: 'The example resource: public, cached reads; writes by the owner only.' },
  routes: ({ db, cache }) => {
    /** Loads the item and checks ownership: 404 when absent, 403 when someone else's. */
    const ownedItem = async (id: string, userId: string): Promise<Item> => {
      const item = await findItem(db, id);
      if (!item) throw new AppError('not_found');
      if (item.ownerId !== userId) throw new AppError('forbidden', { security: { reason: "another user's item" } });
      return item;
    };

    return [
      route({
        method: 'get',
        path: '/',
        operationId: 'listItems',
        summary: 'List items, a page at a time',
        description: 'Newest first unless `sort` says otherwise. Cached for 30 s; a write is seen by the next read on every worker.',
        access: 'public',
        query: listQuery,
        // The validated, defaulted parameters are the key: `?` and `?page=1` share an entry.
        cache: {
          name: 'items:list',
          ttlMs: LIST_TTL_MS,
          namespace: () => 'items',
          key: ({ query: q }) => `page=${q.page}&limit=${q.limit}&sort=${q.sort}&tag=${encodeURIComponent(q.tag ?? '')}`,
        },
        responses: { 200: { description: 'One page of items and the total', body: itemPage } },
        handler: async ({ query }, _req, res) => {
          const { items, total } = await listItems(db, query);
          res.json({ items, page: query.page, limit: query.limit, total });
        },
      }),

      route({
        method: 'get',
        path: '/:id',
        operationId: 'getItem',
        summary: 'One item',
        description: 'Cached for 60 s; a write to the item is seen by the next read on every worker.',
        access: 'public',
        params: itemParams,
        cache: { name: 'items:one', ttlMs: ITEM_TTL_MS, namespace: ({ params }) => `item:${params.id}`, key: ({ params }) => params.id },
        responses: { 200: { description: 'The item', body: itemResponse } },
        errors: ['not_found'],
        handler: async ({ params }, _req, res) => {
          const item = await findItem(db, params.id);
          if (!item) throw new AppError('not_found');
          res.json({ item });
        },
      }),

      route({
        method: 'post',
        path: '/',
        operationId: 'createItem',
        summary: 'Create an item owned by the caller',
        description: 'Only the caller may later change or delete it. Unknown fields are refused (422), never stored.',
        access: 'bearer',
        body: createItemBody,
        responses: { 201: { description: 'Created', body: itemResponse } },
        handler: async ({ body, auth }, _req, res) => {
          const item = await insertItem(db, auth.sub, body);
          await cache.invalidate(itemNamespaces(item.id));
          res.status(201).json({ item });
        },
      }),

      route({
        method: 'patch',
        path: '/:id',
        operationId: 'updateItem',
        summary: "Change some of an item's fields (owner only)",
        description: "Fields not given keep their values; at least one must be given. 403 when the item is someone else's.",
        access: 'bearer',
        params: itemParams,
        body: updateItemBody,
        responses: { 200: { description: 'The item as changed', body: itemResponse } },
        errors: ['forbidden', 'not_found'],
        handler: async ({ params, body, auth }, _req, res) => {
          const existing = await ownedItem(params.id, auth.sub);
          const item = await updateItem(db, existing.id, body);
          if (!item) throw new AppError('not_found');
          await cache.invalidate(itemNamespaces(item.id));
          res.json({ item });
        },
      }),

      route({
        method: 'delete',
        path: '/:id',
        operationId: 'deleteItem',
        summary: 'Delete an item (owner only)',
        description: "403 when the item is someone else's; its cached reads are invalidated on every worker.",
        access: 'bearer',
        params: itemParams,
        responses: { 204: { description: 'Deleted' } },
        errors: ['forbidden', 'not_found'],
        handler: async ({ params, auth }, _req, res) => {
          const existing = await ownedItem(params.id, auth.sub);
          if (!(await deleteItem(db, existing.id))) throw new AppError('not_found');
          await cache.invalidate(itemNamespaces(existing.id));
          res.status(204).end();
        },
      }),
    ];
  },
});
