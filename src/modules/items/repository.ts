// Items in PostgreSQL. Sorting comes from a fixed whitelist mapped to SQL here, never from input.
import type { Queryable } from '../../lib/db';

export interface Item {
  id: string;
  name: string;
  description: string | null;
  price: number;
  tags: string[];
  ownerId: string;
  createdAt: string;
  updatedAt: string;
}

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
export type SortKey = (typeof SORT_KEYS)[number];

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

export function toItem(row: ItemRow): Item {
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

export interface ListQuery {
  page: number;
  limit: number;
  sort: SortKey;
  tag?: string;
}

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
