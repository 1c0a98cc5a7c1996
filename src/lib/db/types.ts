// The small database interface the app uses: parameterised queries, multi-statement exec
// (migrations) and transactions. Implemented over a pg Pool (production) and PGlite (embedded
// default for development), which share pg's result shape.

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Several statements, no parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Database extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction on one connection; rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Round-trip time in ms of a trivial query; throws when the database cannot answer. */
  ping(): Promise<number>;
  close(): Promise<void>;
}

/** int8 (count(*), bigint ids) as a JS number when safe: BigInt cannot go through res.json. */
export function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}
export const INT8_OID = 20;
