// Items in PostgreSQL. Sorting comes from a fixed whitelist mapped to SQL here, never from input.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../lib/db';
import type { Infer, InferFields } from '../../lib/schema';
import type { createItemBody, ItemInput, itemSchema, listQuery } from './schema';

/** What the API returns: the type of the response schema, so the two cannot differ. */
export type Item = Infer<typeof itemSchema>;

interface ItemRow {
  id: string;
  name: string;
  description: string | null;
  price: string | number;
  tags: string[];
  owner_id: string;
  created_at: Date | string;
  updated_at: Date | string;
}

export const SORT_KEYS = ['createdAt', '-createdAt', 'price', '-price', 'name', '-name'] as const;
type SortKey = (typeof SORT_KEYS)[number];

const ORDER_BY: Record<SortKey, string> = {
  createdAt: 'created_at ASC, id ASC',
  '-createdAt': 'created_at DESC, id DESC',
  price: 'price ASC, id ASC',
  '-price': 'price DESC, id DESC',
  name: 'name ASC, id ASC',
  '-name': 'name DESC, id DESC',
};

const COLUMNS = 'id, name, description, price, tags, owner_id, created_at, updated_at';

function toIso(value: Date | string): string {
  return (value instanceof Date ? value : new Date(value)).toISOString();
}

function toItem(row: ItemRow): Item {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    price: Number(row.price), // numeric(12,2) arrives as a string; exact in a double at this scale
    tags: row.tags,
    ownerId: row.owner_id,
    createdAt: toIso(row.created_at),
    updatedAt: toIso(row.updated_at),
  };
}

export type ListQuery = InferFields<typeof listQuery>;

export async function listItems(db: Queryable, q: ListQuery): Promise<{ items: Item[]; total: number }> {
  const params: unknown[] = [];
  let where = '';
  if (q.tag !== undefined) {
    params.push(q.tag);
    where = `WHERE tags @> ARRAY[$${params.length}]::text[]`;
  }
  const offset = (q.page - 1) * q.limit;
  // One round trip: the window count gives the total alongside the page.
  const { rows } = await db.query<ItemRow & { total: number }>(
    `SELECT ${COLUMNS}, count(*) OVER () AS total FROM items ${where}
     ORDER BY ${ORDER_BY[q.sort]} LIMIT ${q.limit} OFFSET ${offset}`,
    params,
  );
  let total = rows[0]?.total ?? 0;
  if (rows.length === 0 && offset > 0) {
    // Past the last page the window count is unavailable; count separately.
    const count = await db.query<{ total: number }>(`SELECT count(*)::int8 AS total FROM items ${where}`, params);
    total = count.rows[0]?.total ?? 0;
  }
  return { items: rows.map(toItem), total: Number(total) };
}

export async function findItem(db: Queryable, id: string): Promise<Item | undefined> {
  const { rows } = await db.query<ItemRow>(`SELECT ${COLUMNS} FROM items WHERE id = $1`, [id]);
  return rows[0] ? toItem(rows[0]) : undefined;
}

export type NewItem = Infer<typeof createItemBody>;

export async function insertItem(db: Queryable, ownerId: string, input: NewItem): Promise<Item> {
  const { rows } = await db.query<ItemRow>(
    `INSERT INTO items (id, owner_id, name, description, price, tags) VALUES ($1, $2, $3, $4, $5, $6)
     RETURNING ${COLUMNS}`,
    [randomUUID(), ownerId, input.name, input.description ?? null, input.price, input.tags ?? []],
  );
  return toItem(rows[0]!);
}

/** Applies the given fields only; returns undefined when the item does not exist. */
export async function updateItem(db: Queryable, id: string, input: ItemInput): Promise<Item | undefined> {
  const sets: string[] = [];
  const params: unknown[] = [id];
  for (const [column, value] of [
    ['name', input.name],
    ['description', input.description],
    ['price', input.price],
    ['tags', input.tags],
  ] as const) {
    if (value === undefined) continue;
    params.push(value);
    sets.push(`${column} = $${params.length}`);
  }
  const { rows } = await db.query<ItemRow>(`UPDATE items SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`, params);
  return rows[0] ? toItem(rows[0]) : undefined;
}

export async function deleteItem(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('DELETE FROM items WHERE id = $1', [id])).rowCount > 0;
}

/** Deletes every item of one owner (account deletion); returns their ids. */
export async function deleteItemsOf(db: Queryable, ownerId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>('DELETE FROM items WHERE owner_id = $1 RETURNING id', [ownerId]);
  return rows.map((r) => r.id);
}
