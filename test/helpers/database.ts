// A fresh PostgreSQL database per test file (when DATABASE_URL is set), dropped afterwards.
import pg from 'pg';
import { DATABASE_URL, DB_TRANSACTION_POOLING, uniqueSuffix } from './services';

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

async function admin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new database on the server of adminUrl (DATABASE_URL by default). */
export async function createTestDatabase(adminUrl = DATABASE_URL): Promise<TestDatabase> {
  if (!adminUrl) throw new Error('createTestDatabase needs DATABASE_URL');
  const name = `rampart_t_${uniqueSuffix()}`;
  await admin(adminUrl, async (c) => {
    await c.query(`CREATE DATABASE ${name}`);
    // Behind a transaction pooler the server-side statement timeout is the role's, as
    // docs/operations.md asks of a deployment; here for this database only (dropped with it).
    if (DB_TRANSACTION_POOLING) await c.query(`ALTER ROLE CURRENT_USER IN DATABASE ${name} SET statement_timeout = '800ms'`);
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: () => admin(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}
