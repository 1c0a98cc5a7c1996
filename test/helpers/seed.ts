// Rows written straight into the database, for tests of read paths.
import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/lib/db';

export async function seedUser(db: Database, email = `user-${randomUUID()}@example.com`): Promise<string> {
  const id = randomUUID();
  await db.query('INSERT INTO users (id, email, password_hash, name) VALUES ($1, $2, $3, $4)', [id, email, 'not-a-real-hash', 'Seed']);
  return id;
}

export interface SeedItem {
  name: string;
  price: number;
  tags?: string[];
  description?: string;
  createdAt?: string;
}

export async function seedItems(db: Database, ownerId: string, items: SeedItem[]): Promise<string[]> {
  const ids: string[] = [];
  for (const item of items) {
    const id = randomUUID();
    await db.query(
      `INSERT INTO items (id, owner_id, name, description, price, tags, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`,
      [id, ownerId, item.name, item.description ?? null, item.price, item.tags ?? [], item.createdAt ?? new Date().toISOString()],
    );
    ids.push(id);
  }
  return ids;
}
