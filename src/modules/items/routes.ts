import { Router } from 'express';
import { matchedData } from 'express-validator';
import type { Database } from '../../lib/db';
import { AppError } from '../../lib/errors';
import { rejectOtherMethods } from '../../middleware/routing';
import { validate } from '../../middleware/validate';
import { findItem, listItems, type SortKey } from './repository';
import { itemIdParam, listItemsQuery } from './schema';

export function itemsRouter(db: Database): Router {
  const router = Router();

  router.get('/', validate(listItemsQuery), async (req, res) => {
    const q = matchedData(req, { locations: ['query'] }) as { page?: number; limit?: number; sort?: SortKey; tag?: string };
    const page = q.page ?? 1;
    const limit = q.limit ?? 20;
    const { items, total } = await listItems(db, { page, limit, sort: q.sort ?? '-createdAt', tag: q.tag });
    res.json({ items, page, limit, total });
  });

  router.get('/:id', validate(itemIdParam), async (req, res) => {
    const { id } = matchedData(req, { locations: ['params'] }) as { id: string };
    const item = await findItem(db, id);
    if (!item) throw new AppError('not_found');
    res.json({ item });
  });

  return rejectOtherMethods(router);
}
