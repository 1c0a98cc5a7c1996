// `npm run new:module -- <name>`: writes a working resource the way docs/adding-a-module.md
// describes it (migration, schema, repository, module, integration test), adds it to the module
// list and regenerates the committed OpenAPI document. The resource is private to its author:
// list, create, read, change and delete their own records, someone else's being "not found".
// What it writes is meant to be edited: rename the fields, add routes, keep the tests passing.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { format, resolveConfig } from 'prettier';

const ROOT = path.resolve(__dirname, '..');

const USAGE = `Usage: npm run new:module -- <name> [--singular <word>] [--no-openapi]

  <name>               the resource, plural and lower-case, words joined by '-': notes, order-lines
  --singular <word>    its singular when it is not <name> without its plural ending (people: person)
  --no-openapi         do not regenerate docs/openapi.json (run npm run openapi later)

Writes migrations/NNNN_<table>.sql, src/modules/<name>/{schema,repository,index}.ts and
test/integration/<name>.test.ts, adds the module to src/modules/index.ts and regenerates
docs/openapi.json. Refuses to overwrite anything.`;

const WORD = /^[a-z0-9]+$/;
const MAX_NAME_LENGTH = 40;

export interface Names {
  /** As given, kebab-case plural: the folder, the URL segment and the test file. */
  kebab: string;
  /** snake_case plural: the table. */
  table: string;
  camelPlural: string;
  pascalPlural: string;
  pascalSingular: string;
  /** camelCase singular: the key of one record in an answer (`{ "note": {...} }`). */
  camelSingular: string;
  /** Words for summaries and descriptions. */
  words: string;
  singularWords: string;
}

const pascal = (words: string[]) => words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
const camel = (words: string[]) => words[0]! + pascal(words.slice(1));

/** English plural endings that a rule can undo; anything else needs --singular. */
export function singularOf(word: string): string | undefined {
  if (/[^aeiou]ies$/.test(word)) return `${word.slice(0, -3)}y`;
  if (/(ss|x|z|ch|sh)es$/.test(word)) return word.slice(0, -2);
  if (/[^su]s$/.test(word)) return word.slice(0, -1);
  return undefined;
}

export function namesOf(name: string, singular?: string): Names {
  const words = name.split('-');
  if (!/^[a-z]/.test(name) || !words.every((w) => WORD.test(w)) || name.length > MAX_NAME_LENGTH) {
    throw new Error(
      `'${name}' is not a module name: lower-case letters and digits, words joined by '-', starting with a letter, at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  const last = words[words.length - 1]!;
  const single = singular ?? singularOf(last);
  if (single === undefined) throw new Error(`cannot tell the singular of '${last}': pass --singular <word>`);
  if (!/^[a-z][a-z0-9]*$/.test(single)) throw new Error(`'${single}' is not a singular word: lower-case letters and digits, starting with a letter`);
  if (single === last) throw new Error(`the singular '${single}' is the same as the plural: the operation names would collide`);
  const singularWords = [...words.slice(0, -1), single];
  return {
    kebab: name,
    table: words.join('_'),
    camelPlural: camel(words),
    pascalPlural: pascal(words),
    pascalSingular: pascal(singularWords),
    camelSingular: camel(singularWords),
    words: words.join(' '),
    singularWords: singularWords.join(' '),
  };
}

// ---- templates ------------------------------------------------------------------------------

const migration = (n: Names) => `-- ${n.pascalPlural}: private records, each readable and writable by its author only. The bounds
-- mirror the API's validation, so bad data cannot be stored even by code that forgets to validate.
CREATE TABLE ${n.table} (
  id uuid PRIMARY KEY,
  owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  description text CHECK (description IS NULL OR char_length(description) <= 2000),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- The list query: one author's records, newest first.
CREATE INDEX ${n.table}_owner_idx ON ${n.table} (owner_id, created_at DESC, id DESC);
`;

const schema = (n: Names) => `// The ${n.words} resource's fields, declared once: validation, handler types and the document follow.
import { s } from '../../lib/schema';

const id = s.string({ format: 'uuid', minLength: 36, maxLength: 36, example: '6f1c2b8e-3d4a-4e5f-9a6b-7c8d9e0f1a2b' });
const name = s.string({ minLength: 1, maxLength: 200, trim: true, description: 'Surrounding whitespace is removed.', example: 'First' });
const description = s.nullable(s.string({ maxLength: 2000, example: 'More about it' }));
const timestamp = s.string({ format: 'date-time', maxLength: 40 });

export const ${n.camelSingular}Params = { id };

export const create${n.pascalSingular}Body = s.object({ name, description: s.optional(description) });
export const update${n.pascalSingular}Body = s.object(
  { name: s.optional(name), description: s.optional(description) },
  { minProperties: 1, description: 'A partial update: only the fields given change; at least one.' },
);

export const ${n.camelSingular}Schema = s.named(
  '${n.pascalSingular}',
  s.object({
    id,
    name: s.string({ minLength: 1, maxLength: 200 }),
    description: s.nullable(s.string({ maxLength: 2000 })),
    createdAt: timestamp,
    updatedAt: timestamp,
  }),
);
export const ${n.camelSingular}Response = s.object({ ${n.camelSingular}: ${n.camelSingular}Schema });
export const ${n.camelSingular}List = s.object({ ${n.camelPlural}: s.array(${n.camelSingular}Schema, { maxItems: 100 }) });
`;

const repository = (n: Names) => `// ${n.pascalPlural} in PostgreSQL: SQL only, parameters always bound, every statement scoped to the
// owner, so that another user's record is never read, changed or deleted.
import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../lib/db';
import type { Infer } from '../../lib/schema';
import type { create${n.pascalSingular}Body, ${n.camelSingular}Schema, update${n.pascalSingular}Body } from './schema';

/** What the API returns: the type of the response schema, so the two cannot differ. */
type ${n.pascalSingular} = Infer<typeof ${n.camelSingular}Schema>;

interface ${n.pascalSingular}Row {
  id: string;
  name: string;
  description: string | null;
  created_at: Date | string;
  updated_at: Date | string;
}

const COLUMNS = 'id, name, description, created_at, updated_at';
const toIso = (value: Date | string) => (value instanceof Date ? value : new Date(value)).toISOString();
const fromRow = (row: ${n.pascalSingular}Row): ${n.pascalSingular} => ({
  id: row.id,
  name: row.name,
  description: row.description,
  createdAt: toIso(row.created_at),
  updatedAt: toIso(row.updated_at),
});

/** The owner's records, newest first, at most 100. */
export async function list${n.pascalPlural}(db: Queryable, ownerId: string): Promise<${n.pascalSingular}[]> {
  const { rows } = await db.query<${n.pascalSingular}Row>(\`SELECT \${COLUMNS} FROM ${n.table} WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100\`, [ownerId]);
  return rows.map(fromRow);
}

export async function find${n.pascalSingular}(db: Queryable, ownerId: string, id: string): Promise<${n.pascalSingular} | undefined> {
  const { rows } = await db.query<${n.pascalSingular}Row>(\`SELECT \${COLUMNS} FROM ${n.table} WHERE id = $1 AND owner_id = $2\`, [id, ownerId]);
  return rows[0] ? fromRow(rows[0]) : undefined;
}

export async function insert${n.pascalSingular}(db: Queryable, ownerId: string, input: Infer<typeof create${n.pascalSingular}Body>): Promise<${n.pascalSingular}> {
  const { rows } = await db.query<${n.pascalSingular}Row>(\`INSERT INTO ${n.table} (id, owner_id, name, description) VALUES ($1, $2, $3, $4) RETURNING \${COLUMNS}\`, [
    randomUUID(),
    ownerId,
    input.name,
    input.description ?? null,
  ]);
  return fromRow(rows[0]!);
}

/** Applies the given fields only; undefined when the owner has no such record. */
export async function update${n.pascalSingular}(
  db: Queryable,
  ownerId: string,
  id: string,
  input: Infer<typeof update${n.pascalSingular}Body>,
): Promise<${n.pascalSingular} | undefined> {
  const sets: string[] = [];
  const params: unknown[] = [id, ownerId];
  // Column names come from this fixed list, never from input.
  for (const [column, value] of [
    ['name', input.name],
    ['description', input.description],
  ] as const) {
    if (value === undefined) continue;
    params.push(value);
    sets.push(\`\${column} = $\${params.length}\`);
  }
  const { rows } = await db.query<${n.pascalSingular}Row>(
    \`UPDATE ${n.table} SET \${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 AND owner_id = $2 RETURNING \${COLUMNS}\`,
    params,
  );
  return rows[0] ? fromRow(rows[0]) : undefined;
}

export async function delete${n.pascalSingular}(db: Queryable, ownerId: string, id: string): Promise<boolean> {
  return (await db.query('DELETE FROM ${n.table} WHERE id = $1 AND owner_id = $2', [id, ownerId])).rowCount > 0;
}
`;

const moduleIndex = (n: Names) => `// The ${n.words} resource: each user's own records. Another user's record is "not found", never
// "forbidden", so that its existence is not disclosed.
import { AppError } from '../../lib/errors';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';
import { delete${n.pascalSingular}, find${n.pascalSingular}, insert${n.pascalSingular}, list${n.pascalPlural}, update${n.pascalSingular} } from './repository';
import { create${n.pascalSingular}Body, ${n.camelSingular}List, ${n.camelSingular}Params, ${n.camelSingular}Response, update${n.pascalSingular}Body } from './schema';

export const ${n.camelPlural}Module = defineModule({
  name: '${n.kebab}',
  base: '/api/v1/${n.kebab}',
  tag: { name: '${n.pascalPlural}', description: "The caller's own ${n.words}." },
  routes: ({ db }) => [
    route({
      method: 'get',
      path: '/',
      operationId: 'list${n.pascalPlural}',
      summary: "The caller's ${n.words}, newest first",
      description: 'At most 100.',
      access: 'bearer',
      responses: { 200: { description: 'The ${n.words}', body: ${n.camelSingular}List } },
      handler: async ({ auth }, _req, res) => {
        res.json({ ${n.camelPlural}: await list${n.pascalPlural}(db, auth.sub) });
      },
    }),

    route({
      method: 'post',
      path: '/',
      operationId: 'create${n.pascalSingular}',
      summary: 'Create a ${n.singularWords}',
      description: 'Only its author can read, change or delete it. Unknown fields are refused (422), never stored.',
      access: 'bearer',
      body: create${n.pascalSingular}Body,
      responses: { 201: { description: 'Created', body: ${n.camelSingular}Response } },
      handler: async ({ auth, body }, _req, res) => {
        res.status(201).json({ ${n.camelSingular}: await insert${n.pascalSingular}(db, auth.sub, body) });
      },
    }),

    route({
      method: 'get',
      path: '/:id',
      operationId: 'get${n.pascalSingular}',
      summary: 'One of the caller\\'s ${n.words}',
      description: "Someone else's is 404, as if it did not exist.",
      access: 'bearer',
      params: ${n.camelSingular}Params,
      responses: { 200: { description: 'The ${n.singularWords}', body: ${n.camelSingular}Response } },
      errors: ['not_found'],
      handler: async ({ auth, params }, _req, res) => {
        const found = await find${n.pascalSingular}(db, auth.sub, params.id);
        if (!found) throw new AppError('not_found');
        res.json({ ${n.camelSingular}: found });
      },
    }),

    route({
      method: 'patch',
      path: '/:id',
      operationId: 'update${n.pascalSingular}',
      summary: 'Change some fields of a ${n.singularWords}',
      description: "Fields not given keep their values; at least one must be given. Someone else's is 404.",
      access: 'bearer',
      params: ${n.camelSingular}Params,
      body: update${n.pascalSingular}Body,
      responses: { 200: { description: 'The ${n.singularWords} as changed', body: ${n.camelSingular}Response } },
      errors: ['not_found'],
      handler: async ({ auth, params, body }, _req, res) => {
        const changed = await update${n.pascalSingular}(db, auth.sub, params.id, body);
        if (!changed) throw new AppError('not_found');
        res.json({ ${n.camelSingular}: changed });
      },
    }),

    route({
      method: 'delete',
      path: '/:id',
      operationId: 'delete${n.pascalSingular}',
      summary: 'Delete a ${n.singularWords}',
      description: "Someone else's is 404, as if it did not exist.",
      access: 'bearer',
      params: ${n.camelSingular}Params,
      responses: { 204: { description: 'Deleted' } },
      errors: ['not_found'],
      handler: async ({ auth, params }, _req, res) => {
        if (!(await delete${n.pascalSingular}(db, auth.sub, params.id))) throw new AppError('not_found');
        res.status(204).end();
      },
    }),
  ],
});
`;

const integrationTest = (n: Names) => `// The ${n.words} resource against the real services when REDIS_URL and DATABASE_URL are set (embedded
// defaults otherwise). Every response is checked against the OpenAPI document (test/helpers/contract.ts).
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/app';
import { register, type Account } from '../helpers/auth';

const BASE = '/api/v1/${n.kebab}';
let ctx: TestContext;
let author: Account;
let stranger: Account;

beforeAll(async () => {
  ctx = await createTestContext();
  author = await register(ctx.app);
  stranger = await register(ctx.app);
});
afterAll(async () => ctx?.close());

const as = (account: Account) => ({ Authorization: \`Bearer \${account.accessToken}\` });
const create = (account: Account, body: object) => request(ctx.app).post(BASE).set(as(account)).send(body);

describe('${n.words}', () => {
  it('creates, lists, reads, changes and deletes the caller\\'s own', async () => {
    const created = await create(author, { name: '  First ', description: 'about it' }).expect(201);
    const record = created.body.${n.camelSingular};
    expect(record).toMatchObject({ name: 'First', description: 'about it' });
    expect(record.createdAt).toBe(record.updatedAt);

    const list = await request(ctx.app).get(BASE).set(as(author)).expect(200);
    expect(list.body.${n.camelPlural}.map((r: { id: string }) => r.id)).toContain(record.id);

    const read = await request(ctx.app).get(\`\${BASE}/\${record.id}\`).set(as(author)).expect(200);
    expect(read.body.${n.camelSingular}).toEqual(record);

    const changed = await request(ctx.app).patch(\`\${BASE}/\${record.id}\`).set(as(author)).send({ description: null }).expect(200);
    expect(changed.body.${n.camelSingular}).toMatchObject({ id: record.id, name: 'First', description: null });

    await request(ctx.app).delete(\`\${BASE}/\${record.id}\`).set(as(author)).expect(204);
    await request(ctx.app).get(\`\${BASE}/\${record.id}\`).set(as(author)).expect(404);
    await request(ctx.app).delete(\`\${BASE}/\${record.id}\`).set(as(author)).expect(404);
  });

  it('lists the newest first, and only the caller\\'s', async () => {
    const owner = await register(ctx.app);
    const first = (await create(owner, { name: 'older' }).expect(201)).body.${n.camelSingular};
    const second = (await create(owner, { name: 'newer' }).expect(201)).body.${n.camelSingular};
    await create(stranger, { name: 'not theirs' }).expect(201);
    const list = await request(ctx.app).get(BASE).set(as(owner)).expect(200);
    const ids = list.body.${n.camelPlural}.map((r: { id: string }) => r.id);
    expect(new Set(ids)).toEqual(new Set([first.id, second.id]));
    const names = list.body.${n.camelPlural}.map((r: { name: string }) => r.name);
    // Same-millisecond inserts are ordered by id; otherwise the newer comes first.
    if (first.createdAt !== second.createdAt) expect(names).toEqual(['newer', 'older']);
  });

  it("answers 404 for someone else's, and leaves it as it was", async () => {
    const record = (await create(author, { name: 'private' }).expect(201)).body.${n.camelSingular};
    await request(ctx.app).get(\`\${BASE}/\${record.id}\`).set(as(stranger)).expect(404);
    await request(ctx.app).patch(\`\${BASE}/\${record.id}\`).set(as(stranger)).send({ name: 'taken' }).expect(404);
    await request(ctx.app).delete(\`\${BASE}/\${record.id}\`).set(as(stranger)).expect(404);
    const read = await request(ctx.app).get(\`\${BASE}/\${record.id}\`).set(as(author)).expect(200);
    expect(read.body.${n.camelSingular}).toEqual(record);
  });

  it('needs a valid access token', async () => {
    const res = await request(ctx.app).get(BASE).expect(401);
    expect(res.body.error.code).toBe('unauthorized');
    await request(ctx.app).post(BASE).send({ name: 'x' }).expect(401);
    await request(ctx.app).get(\`\${BASE}/\${randomUUID()}\`).set({ Authorization: 'Bearer not-a-token' }).expect(401);
  });

  it('refuses bad input with 422 naming every field, and stores nothing', async () => {
    const owner = await register(ctx.app);
    const bad = await create(owner, { name: '   ', description: 'x'.repeat(2001), extra: true }).expect(422);
    expect(bad.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual(['description', 'extra', 'name']);
    await create(owner, { name: 'x'.repeat(201) }).expect(422);
    await create(owner, { name: 5 }).expect(422);
    await create(owner, {}).expect(422);
    expect((await request(ctx.app).get(BASE).set(as(owner)).expect(200)).body.${n.camelPlural}).toEqual([]);

    const record = (await create(owner, { name: 'kept' }).expect(201)).body.${n.camelSingular};
    await request(ctx.app).patch(\`\${BASE}/\${record.id}\`).set(as(owner)).send({}).expect(422);
    await request(ctx.app).patch(\`\${BASE}/\${record.id}\`).set(as(owner)).send({ name: null }).expect(422);
    await request(ctx.app).get(\`\${BASE}/not-a-uuid\`).set(as(owner)).expect(422);
    const unknown = await request(ctx.app).get(\`\${BASE}/\${randomUUID()}\`).set(as(owner)).expect(404);
    expect(unknown.body.error.code).toBe('not_found');
  });
});
`;

// ---- the module list ------------------------------------------------------------------------

/** Adds the import (kept in name order) and the module before the diagnostic routes (or last). */
export function addToModuleList(source: string, n: Names): string {
  const importLine = `import { ${n.camelPlural}Module } from './${n.kebab}';`;
  const imports = [...source.matchAll(/^import \{ \w+ \} from '\.\/[^']+';$/gm)];
  if (imports.length === 0) throw new Error('src/modules/index.ts: no module imports found');
  const before = imports.find((m) => m[0].localeCompare(importLine) > 0);
  const at = before ? before.index : imports[imports.length - 1]!.index + imports[imports.length - 1]![0].length + 1;
  let out = `${source.slice(0, at)}${importLine}\n${source.slice(at)}`;
  const list = /(export const modules: readonly ModuleDefinition\[\] = \[)([^\]]*)(\];)/.exec(out);
  if (!list) throw new Error('src/modules/index.ts: the modules list was not found');
  const entries = list[2]!
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const diag = entries.indexOf('diagModule');
  entries.splice(diag === -1 ? entries.length : diag, 0, `${n.camelPlural}Module`);
  out = out.replace(list[0], `${list[1]}${entries.join(', ')}${list[3]}`);
  return out;
}

// ---- writing ------------------------------------------------------------------------------------

function nextMigration(n: Names): string {
  const dir = path.join(ROOT, 'migrations');
  const files = readdirSync(dir).filter((f) => /^\d{4}_.+\.sql$/.test(f));
  for (const file of files) {
    const created = [...readFileSync(path.join(dir, file), 'utf8').matchAll(/CREATE TABLE (?:IF NOT EXISTS )?(\w+)/gi)].map((m) => m[1]!.toLowerCase());
    if (created.includes(n.table)) throw new Error(`the table '${n.table}' already exists (${file})`);
  }
  const last = Math.max(0, ...files.map((f) => Number(f.slice(0, 4))));
  return path.join('migrations', `${String(last + 1).padStart(4, '0')}_${n.table}.sql`);
}

async function formatted(file: string, text: string): Promise<string> {
  if (!file.endsWith('.ts')) return text;
  const options = await resolveConfig(path.join(ROOT, file));
  return format(text, { ...options, filepath: file });
}

async function main(argv: string[]): Promise<void> {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(USAGE);
    return;
  }
  let singular: string | undefined;
  let openapi = true;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--singular') singular = argv[++i];
    else if (arg === '--no-openapi') openapi = false;
    else if (arg.startsWith('-')) throw new Error(`unknown option '${arg}'`);
    else positional.push(arg);
  }
  if (positional.length !== 1) throw new Error('give exactly one module name');
  const n = namesOf(positional[0]!, singular);

  const moduleDir = path.join('src/modules', n.kebab);
  if (existsSync(path.join(ROOT, moduleDir))) throw new Error(`${moduleDir} already exists`);
  const files: [string, string][] = [
    [nextMigration(n), migration(n)],
    [path.join(moduleDir, 'schema.ts'), schema(n)],
    [path.join(moduleDir, 'repository.ts'), repository(n)],
    [path.join(moduleDir, 'index.ts'), moduleIndex(n)],
    [path.join('test/integration', `${n.kebab}.test.ts`), integrationTest(n)],
  ];
  for (const [file] of files) if (existsSync(path.join(ROOT, file))) throw new Error(`${file} already exists`);
  const listFile = 'src/modules/index.ts';
  const list = await formatted(listFile, addToModuleList(readFileSync(path.join(ROOT, listFile), 'utf8'), n));

  // Everything is prepared before the first write, so a refusal leaves the tree untouched.
  const prepared = await Promise.all(files.map(async ([file, text]) => [file, await formatted(file, text)] as const));
  mkdirSync(path.join(ROOT, moduleDir), { recursive: true });
  for (const [file, text] of prepared) {
    writeFileSync(path.join(ROOT, file), text, { flag: 'wx' });
    console.log(`created  ${file}`);
  }
  writeFileSync(path.join(ROOT, listFile), list);
  console.log(`changed  ${listFile}`);
  if (openapi) {
    execFileSync('npm', ['run', '--silent', 'openapi'], { cwd: ROOT, stdio: 'inherit' });
    console.log('changed  docs/openapi.json');
  }
  console.log(`
Next: edit the fields to fit (schema.ts, repository.ts and the migration agree on them), then
  npm test -- test/integration/${n.kebab}.test.ts
  npm run openapi && npm run lint:api
See docs/adding-a-module.md for what each piece does.`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`new:module: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    process.exitCode = 1;
  });
}
