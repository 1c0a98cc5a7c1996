// Request validation compiled from small declarations, and the JSON Schema the same declarations
// describe: every kind's rules and the message a client reads for each, defaults, null, unknown
// fields, what cannot be declared, and the fast path for path and query values (what it converts,
// when it steps aside). test/unit/declarations.test.ts holds the real routes' validators and
// document to each other; this file holds the mechanism to its messages and edges. Loaded inside
// each test (test/helpers/fresh.ts).
import type { Request } from 'express';
import { describe, expect, it } from 'vitest';
import { fresh } from '../helpers/fresh';

const load = () => fresh(async () => ({ schema: await import('../../src/lib/schema.js'), validation: await import('../../src/http/validation.js') }));
type Modules = Awaited<ReturnType<typeof load>>;
type Declaration = Parameters<Modules['validation']['compileValidator']>[0];
type S = Modules['schema']['s'];

const requestOf = (r: { params?: object; query?: object; body?: unknown }) => ({ params: {}, query: {}, headers: {}, ...r }) as unknown as Request;

/** The validated input for a request, or the 422's details. */
async function validate(declare: (s: S) => Declaration, r: { params?: object; query?: object; body?: unknown }) {
  const { schema, validation } = await load();
  const outcome = await validation.compileValidator(declare(schema.s)).run(requestOf(r));
  return 'input' in outcome ? { input: outcome.input } : { details: outcome.details };
}

/** The message a body field gets for `value`, or 'ok'. */
async function bodyMessage(field: (s: S) => Parameters<S['object']>[0][string], value: unknown): Promise<string> {
  const outcome = await validate((s) => ({ body: s.object({ f: field(s) }) }), { body: { f: value } });
  if ('input' in outcome) return 'ok';
  expect(outcome.details).toHaveLength(1);
  expect(outcome.details[0]).toMatchObject({ field: 'f', location: 'body' });
  return outcome.details[0]!.message;
}

describe('strings', () => {
  it('must be strings of plain text', async () => {
    const text = (s: S) => s.string({ maxLength: 10 });
    expect(await bodyMessage(text, 5)).toBe('must be a string');
    expect(await bodyMessage(text, null)).toBe('must be a string');
    expect(await bodyMessage(text, ['a'])).toBe('must be a string');
    expect(await bodyMessage(text, 'a\0b')).toBe('must not contain NUL characters or unpaired surrogates');
    expect(await bodyMessage(text, 'a\uD800b')).toBe('must not contain NUL characters or unpaired surrogates');
    expect(await bodyMessage(text, '😀')).toBe('ok');
  });

  it('count code points against their length, before trimming, and then the minimum after it', async () => {
    const name = (s: S) => s.string({ minLength: 2, maxLength: 4, trim: true });
    expect(await bodyMessage(name, 'abcd')).toBe('ok');
    expect(await bodyMessage(name, '😀😀😀😀')).toBe('ok');
    expect(await bodyMessage(name, 'abcde')).toBe('must be 2 to 4 characters');
    expect(await bodyMessage(name, ' ab ')).toBe('ok');
    expect(await bodyMessage(name, '  ab ')).toBe('must be 2 to 4 characters');
    expect(await bodyMessage(name, ' a  ')).toBe('must be 2 to 4 characters');
    expect(await bodyMessage((s) => s.string({ maxLength: 3 }), 'abcd')).toBe('must be at most 3 characters');
    expect(await bodyMessage((s) => s.string({ maxLength: 3 }), '')).toBe('ok');
    expect(await bodyMessage((s) => s.string({ minLength: 1, maxLength: 3 }), '')).toBe('must be 1 to 3 characters');
    expect(await validate((s) => ({ body: s.object({ f: name(s) }) }), { body: { f: ' ab ' } })).toEqual({
      input: { params: {}, query: {}, body: { f: 'ab' } },
    });
    // Without trim, the value is taken exactly as sent.
    expect(await validate((s) => ({ body: s.object({ f: s.string({ minLength: 1, maxLength: 9 }) }) }), { body: { f: ' ab ' } })).toMatchObject({
      input: { body: { f: ' ab ' } },
    });
  });

  it('match their whole pattern, read as Unicode', async () => {
    const code = (s: S) => s.string({ maxLength: 10, pattern: '^[a-z]+$' });
    expect(await bodyMessage(code, 'abc')).toBe('ok');
    expect(await bodyMessage(code, 'abc1')).toBe('has an invalid format');
    // One code point, whatever its UTF-16 length.
    expect(await bodyMessage((s) => s.string({ maxLength: 2, pattern: '^.$' }), '😀')).toBe('ok');
  });

  it('take emails, trimmed, up to their length', async () => {
    const email = (s: S) => s.string({ format: 'email', maxLength: 30 });
    expect(await validate((s) => ({ body: s.object({ f: email(s) }) }), { body: { f: ' Ada@Example.com ' } })).toMatchObject({
      input: { body: { f: 'Ada@Example.com' } },
    });
    expect(await bodyMessage(email, 'ada@localhost')).toBe('ok');
    expect(await bodyMessage(email, `${'a'.repeat(24)}@b.com`)).toBe('ok'); // exactly 30
    for (const bad of ['not-an-email', 'a@', '@b.co', 'ada@[127.0.0.1]', `${'a'.repeat(25)}@b.com`])
      expect(await bodyMessage(email, bad), bad).toBe('must be an email');
  });

  it('take UUIDs of the versions the pattern allows', async () => {
    const id = (s: S) => s.string({ format: 'uuid', minLength: 36, maxLength: 36 });
    expect(await bodyMessage(id, '6f1c2b8e-3d4a-4e5f-9a6b-7c8d9e0f1a2b')).toBe('ok');
    expect(await bodyMessage(id, '00000000-0000-0000-0000-000000000000')).toBe('ok');
    expect(await bodyMessage(id, '6f1c2b8e-3d4a-0e5f-9a6b-7c8d9e0f1a2b')).toBe('must be a UUID');
    expect(await bodyMessage(id, '6f1c2b8e3d4a4e5f9a6b7c8d9e0f1a2b')).toBe('must be a UUID');
    expect(await bodyMessage((s) => s.string({ format: 'uuid', maxLength: 36, pattern: '^0+-' }), '6f1c2b8e-3d4a-4e5f-9a6b-7c8d9e0f1a2b')).toBe(
      'must be a UUID',
    );
  });

  it('refuse formats a request cannot be checked against', async () => {
    for (const format of ['date-time', 'uri'] as const) {
      await expect(validate((s) => ({ body: s.object({ f: s.string({ format, maxLength: 40 }) }) }), { body: {} })).rejects.toThrow(
        `string format ${format} is not accepted in requests`,
      );
    }
  });
});

describe('other kinds', () => {
  it('enums take their members only', async () => {
    const sort = (s: S) => s.enum(['name', '-name']);
    expect(await bodyMessage(sort, '-name')).toBe('ok');
    for (const bad of ['price', 'NAME', 5, null]) expect(await bodyMessage(sort, bad), String(bad)).toBe('must be one of name, -name');
  });

  it('integers in a body are safe integers in range, never strings', async () => {
    const count = (s: S) => s.integer({ minimum: 1, maximum: 10 });
    expect(await bodyMessage(count, 1)).toBe('ok');
    expect(await bodyMessage(count, 10)).toBe('ok');
    for (const bad of [0, 11, 1.5, '5', null, Number.MAX_SAFE_INTEGER + 1])
      expect(await bodyMessage(count, bad), String(bad)).toBe('must be an integer from 1 to 10');
  });

  it('numbers are finite, in range, with at most their decimals', async () => {
    const price = (s: S) => s.number({ minimum: 0, maximum: 100, decimals: 2 });
    for (const ok of [0, 100, 19.99, 0.1 + 0.2 - 0.3 + 1]) expect(await bodyMessage(price, ok), String(ok)).toBe('ok');
    for (const bad of [-0.01, 100.01, 1.005, '5', Infinity, Number.NaN, null]) {
      expect(await bodyMessage(price, bad), String(bad)).toBe('must be a number from 0 to 100 with at most 2 decimals');
    }
    expect(await bodyMessage((s) => s.number({ minimum: 0, maximum: 1, decimals: 1 }), 0.55)).toBe('must be a number from 0 to 1 with at most 1 decimal');
    expect(await bodyMessage((s) => s.number({ minimum: -1, maximum: 1 }), 0.123456)).toBe('ok');
    expect(await bodyMessage((s) => s.number({ minimum: -1, maximum: 1 }), 2)).toBe('must be a number from -1 to 1');
    expect(await bodyMessage((s) => s.number({ minimum: 0, maximum: 10, decimals: 0 }), 1.5)).toBe('must be a number from 0 to 10 with at most 0 decimals');
  });

  it('booleans are booleans in a body, true or false in a query', async () => {
    expect(await bodyMessage((s) => s.boolean(), true)).toBe('ok');
    for (const bad of ['true', 1, null]) expect(await bodyMessage((s) => s.boolean(), bad), String(bad)).toBe('must be true or false');
    const flag = (value: string) => validate((s) => ({ query: { flag: s.boolean() } }), { query: { flag: value } });
    expect(await flag('true')).toMatchObject({ input: { query: { flag: true } } });
    expect(await flag('false')).toMatchObject({ input: { query: { flag: false } } });
    expect(await flag('1')).toEqual({ details: [{ field: 'flag', location: 'query', message: 'must be true or false' }] });
  });

  it('arrays hold at most their items, each checked and named by position', async () => {
    const tags = (s: S) => s.array(s.string({ minLength: 1, maxLength: 3 }), { maxItems: 2 });
    expect(await bodyMessage(tags, ['a', 'b'])).toBe('ok');
    expect(await bodyMessage(tags, ['a', 'b', 'c'])).toBe('must be an array of at most 2 items');
    expect(await bodyMessage(tags, 'a')).toBe('must be an array of at most 2 items');
    const outcome = await validate((s) => ({ body: s.object({ f: tags(s) }) }), { body: { f: ['a', 'long'] } });
    expect(outcome).toEqual({ details: [{ field: 'f[1]', location: 'body', message: 'must be 1 to 3 characters' }] });
  });

  it('refuses what a request field cannot be', async () => {
    await expect(validate((s) => ({ query: { q: s.number({ minimum: 0, maximum: 1 }) } }), {})).rejects.toThrow(
      'number fields are accepted in JSON bodies only',
    );
    await expect(validate((s) => ({ query: { q: s.array(s.boolean(), { maxItems: 1 }) } }), {})).rejects.toThrow('arrays are accepted in JSON bodies only');
    for (const kind of ['object', 'record', 'raw'] as const) {
      const field = (s: S) => (kind === 'object' ? s.object({}) : kind === 'record' ? s.record(s.boolean(), { maxProperties: 1 }) : s.raw({}));
      await expect(validate((s) => ({ body: s.object({ nested: field(s) }) }), {})).rejects.toThrow(
        `nested ${kind} fields are not accepted in requests (nested)`,
      );
    }
    await expect(validate((s) => ({ body: s.object({ list: s.array(s.object({}), { maxItems: 1 }) }) }), {})).rejects.toThrow(
      'a object cannot be validated as a single body value',
    );
  });
});

describe('presence', () => {
  it('requires a field unless it is optional, and gives a default for an absent one', async () => {
    const declare = (s: S): Declaration => ({
      body: s.object({
        name: s.string({ maxLength: 5 }),
        note: s.optional(s.string({ maxLength: 5 })),
        size: s.withDefault(s.integer({ minimum: 1, maximum: 9 }), 3),
      }),
    });
    expect(await validate(declare, { body: {} })).toEqual({ details: [{ field: 'name', location: 'body', message: 'must be a string' }] });
    expect(await validate(declare, { body: { name: 'a' } })).toEqual({ input: { params: {}, query: {}, body: { name: 'a' } } });
    expect(await validate(declare, { body: { name: 'a', note: 'b', size: 4 } })).toMatchObject({ input: { body: { name: 'a', note: 'b', size: 4 } } });
  });

  it('keeps null for a nullable field, set apart from absent', async () => {
    const declare = (s: S): Declaration => ({
      body: s.object({
        note: s.optional(s.nullable(s.string({ maxLength: 5 }))),
        other: s.optional(s.string({ maxLength: 5 })),
        must: s.nullable(s.string({ maxLength: 5 })),
      }),
    });
    expect(await validate(declare, { body: { note: null, must: null } })).toEqual({ input: { params: {}, query: {}, body: { note: null, must: null } } });
    expect(await validate(declare, { body: { must: 'x' } })).toEqual({ input: { params: {}, query: {}, body: { must: 'x' } } });
    expect(await validate(declare, { body: { other: null, must: null } })).toEqual({
      details: [{ field: 'other', location: 'body', message: 'must be a string' }],
    });
  });

  it('refuses unknown fields, each named, and a change of nothing', async () => {
    const declare = (s: S): Declaration => ({ body: s.object({ a: s.optional(s.boolean()), b: s.optional(s.boolean()) }, { minProperties: 1 }) });
    expect(await validate(declare, { body: { a: true, x: 1, y: 2 } })).toEqual({
      details: [
        { field: 'x', location: 'body', message: 'is not allowed' },
        { field: 'y', location: 'body', message: 'is not allowed' },
      ],
    });
    expect(await validate(declare, { body: {} })).toEqual({ details: [{ field: '', location: 'body', message: 'must change at least one field' }] });
    const two = (s: S): Declaration => ({ body: s.object({ a: s.optional(s.boolean()), b: s.optional(s.boolean()) }, { minProperties: 2 }) });
    expect(await validate(two, { body: { a: true } })).toEqual({ details: [{ field: '', location: 'body', message: 'must have at least 2 fields' }] });
    expect(await validate(two, { body: { a: true, b: false } })).toMatchObject({ input: { body: { a: true, b: false } } });
    expect(await validate(two, { body: null })).toMatchObject({ details: [{ message: 'must have at least 2 fields' }] });
  });

  it('lists one message per field and location, the first that failed', async () => {
    const declare = (s: S): Declaration => ({
      params: { id: s.integer({ minimum: 1, maximum: 9 }) },
      query: { id: s.integer({ minimum: 1, maximum: 9 }) },
      body: s.object({ name: s.string({ minLength: 3, maxLength: 5, pattern: '^[a-z]*$' }) }),
    });
    expect(await validate(declare, { params: { id: '0' }, query: { id: 'x' }, body: { name: 'A' } })).toEqual({
      details: [
        { field: 'id', location: 'params', message: 'must be an integer from 1 to 9' },
        { field: 'id', location: 'query', message: 'must be an integer from 1 to 9' },
        { field: 'name', location: 'body', message: 'has an invalid format' },
      ],
    });
  });
});

describe('path and query values', () => {
  const declaration = (s: S): Declaration => ({
    params: { id: s.string({ format: 'uuid', minLength: 36, maxLength: 36 }) },
    query: {
      page: s.withDefault(s.integer({ minimum: 1, maximum: 1000 }), 1),
      sort: s.withDefault(s.enum(['name', '-name']), 'name'),
      tag: s.optional(s.string({ minLength: 1, maxLength: 5 })),
      code: s.optional(s.string({ maxLength: 5, pattern: '^[a-z]+$' })),
      q: s.optional(s.string({ maxLength: 5, trim: true })),
    },
  });
  const ID = '6f1c2b8e-3d4a-4e5f-9a6b-7c8d9e0f1a2b';

  async function both(query: Record<string, string>, params: Record<string, string> = { id: ID }) {
    const { schema, validation } = await load();
    const validator = validation.compileValidator(declaration(schema.s));
    // Each on its own copy: the chains convert values in place.
    const fast = validator.fast(requestOf({ params: { ...params }, query: { ...query } }));
    const chains = await validator.run(requestOf({ params: { ...params }, query: { ...query } }));
    return { fast, chains: 'input' in chains ? { params: chains.input.params, query: chains.input.query } : chains };
  }

  it('the fast path converts the usual spellings as the chains do, defaults included', async () => {
    const queries: Record<string, string>[] = [{}, { page: '7' }, { page: '1000', sort: '-name' }, { tag: 'ab', code: 'xyz' }, { page: '5', tag: 'a' }];
    for (const query of queries) {
      const { fast, chains } = await both(query);
      expect(fast, JSON.stringify(query)).toEqual(chains);
      expect(fast?.query.page, JSON.stringify(query)).toBe(Number(query.page ?? 1));
    }
    expect((await both({})).fast).toEqual({ params: { id: ID }, query: { page: 1, sort: 'name' } });
  });

  it('the fast path drops undeclared query parameters, as the chains do', async () => {
    const { fast, chains } = await both({ tag: 'a', utm_source: 'x' });
    expect(fast).toEqual({ params: { id: ID }, query: { page: 1, sort: 'name', tag: 'a' } });
    expect(chains).toEqual(fast);
  });

  it('the fast path steps aside for anything unusual, and the chains decide', async () => {
    const unusual: Record<string, string>[] = [
      { page: '01' },
      { page: '+5' },
      { page: '1001' },
      { page: '0' },
      { page: '1e3' },
      { sort: 'price' },
      { tag: '' },
      { tag: 'abcdef' },
      { tag: 'a\0' },
      { tag: '😀' },
      { code: 'AB' },
      { q: ' a ' },
    ];
    for (const query of unusual) {
      expect((await both(query)).fast, JSON.stringify(query)).toBeUndefined();
    }
    expect((await both({}, { id: 'not-a-uuid' })).fast).toBeUndefined();
    expect((await both({}, { id: ID.toUpperCase() })).fast).toEqual({ params: { id: ID.toUpperCase() }, query: { page: 1, sort: 'name' } });
    expect((await both({}, {})).fast).toBeUndefined();
    expect((await both({ page: '01' })).chains).toMatchObject({ query: { page: 1 } });
    expect((await both({ q: ' a ' })).chains).toMatchObject({ query: { q: 'a' } });
  });

  it('answers from the middleware: the fast path, the chains, or 422', async () => {
    const { schema, validation } = await load();
    const { middleware } = validation.compileValidator(declaration(schema.s));
    const CLAIMS = { sub: 'user-1', sid: 's', jti: 'j', iat: 1, exp: 2 };
    const through = (query: Record<string, string>, params: Record<string, string> = { id: ID }) =>
      new Promise<{ validated: unknown; error: unknown }>((resolve) => {
        const req = requestOf({ params, query });
        req.auth = CLAIMS;
        void middleware(req, {} as never, (error?: unknown) => resolve({ validated: req.validated, error }));
      });
    expect(await through({ page: '2' })).toEqual({
      validated: { params: { id: ID }, query: { page: 2, sort: 'name' }, body: {}, auth: CLAIMS },
      error: undefined,
    });
    expect(await through({ page: '02' })).toMatchObject({ validated: { query: { page: 2, sort: 'name' }, auth: { sub: 'user-1' } }, error: undefined });
    const refused = await through({ page: 'x' });
    expect(refused.error).toMatchObject({
      code: 'validation_failed',
      details: [{ field: 'page', location: 'query', message: 'must be an integer from 1 to 1000' }],
    });
  });

  it("the fast path answers with the request's own values when it converts and adds nothing, and copies otherwise", async () => {
    const { schema, validation } = await load();
    const { s } = schema;
    const compiled = validation.compileValidator({
      params: { id: s.string({ maxLength: 5 }) },
      query: { a: s.optional(s.string({ maxLength: 5 })), d: s.withDefault(s.enum(['x', 'y']), 'x'), n: s.optional(s.integer({ minimum: 0, maximum: 9 })) },
    });
    const fast = (r: { params: object; query: object }) => compiled.fast(requestOf(r));
    const params = { id: 'p' };
    const plain = { a: 'v', d: 'y' };
    const same = fast({ params, query: plain });
    expect(same).toEqual({ params: { id: 'p' }, query: { a: 'v', d: 'y' } });
    expect(same?.params).toBe(params);
    expect(same?.query).toBe(plain);
    expect(fast({ params, query: { a: 'v', d: 'y', utm: 'z' } })?.query).toEqual({ a: 'v', d: 'y' });
    expect(fast({ params, query: { d: 'x', n: '5' } })?.query).toEqual({ d: 'x', n: 5 });
    expect(fast({ params, query: { a: 'v', n: '5' } })?.query).toEqual({ a: 'v', d: 'x', n: 5 });
    expect(fast({ params, query: { n: '5', a: 'v', d: 'y' } })?.query).toEqual({ a: 'v', d: 'y', n: 5 });
    expect(fast({ params, query: {} })?.query).toEqual({ d: 'x' });
    // The middleware inlines the same: undeclared parameters never reach the handler.
    const req = requestOf({ params, query: { a: 'v', d: 'y', utm: 'z' } });
    await new Promise<void>((resolve) => void compiled.middleware(req, {} as never, () => resolve()));
    expect(req.validated?.query).toEqual({ a: 'v', d: 'y' });
  });

  it('bodies always go through the chains', async () => {
    const { schema, validation } = await load();
    const compiled = validation.compileValidator({
      params: { id: schema.s.string({ maxLength: 5 }) },
      body: schema.s.object({ name: schema.s.string({ maxLength: 5, trim: true }) }),
    });
    expect(compiled.fast(requestOf({ params: { id: 'a' } }))).toEqual({ params: { id: 'a' }, query: {} });
    const req = requestOf({ params: { id: 'a' }, body: { name: ' x ' } });
    await new Promise<void>((resolve) => void compiled.middleware(req, {} as never, () => resolve()));
    expect(req.validated).toEqual({ params: { id: 'a' }, query: {}, body: { name: 'x' }, auth: undefined });
  });
});

describe('the JSON Schema of a declaration', () => {
  const json = async (declare: (s: S) => Parameters<Modules['schema']['toJsonSchema']>[0]) => {
    const { schema } = await load();
    const registry = new Map<string, unknown>() as Parameters<Modules['schema']['toJsonSchema']>[1];
    return { json: schema.toJsonSchema(declare(schema.s), registry), registry };
  };

  it('states every rule the validator applies', async () => {
    expect((await json((s) => s.string({ maxLength: 5 }))).json).toStrictEqual({ type: 'string', maxLength: 5 });
    expect((await json((s) => s.string({ minLength: 2, maxLength: 5, description: 'd', example: 'ab' }))).json).toStrictEqual({
      type: 'string',
      maxLength: 5,
      minLength: 2,
      description: 'd',
      examples: ['ab'],
    });
    expect((await json((s) => s.string({ minLength: 1, maxLength: 5, trim: true }))).json).toStrictEqual({ type: 'string', maxLength: 5, pattern: '\\S' });
    expect((await json((s) => s.string({ minLength: 3, maxLength: 5, trim: true }))).json).toStrictEqual({
      type: 'string',
      maxLength: 5,
      pattern: '^\\s*\\S[\\s\\S]{1,}\\S\\s*$',
    });
    expect((await json((s) => s.string({ maxLength: 5, trim: true }))).json).toStrictEqual({ type: 'string', maxLength: 5 });
    expect((await json((s) => s.string({ maxLength: 5, pattern: '^a' }))).json).toStrictEqual({ type: 'string', maxLength: 5, pattern: '^a' });
    const { schema } = await load();
    expect((await json((s) => s.string({ format: 'uuid', maxLength: 36 }))).json).toStrictEqual({
      type: 'string',
      maxLength: 36,
      pattern: schema.UUID_PATTERN,
      format: 'uuid',
    });
    expect((await json((s) => s.string({ format: 'date-time', maxLength: 40 }))).json).toStrictEqual({ type: 'string', maxLength: 40, format: 'date-time' });
    expect((await json((s) => s.enum(['a', 'b']))).json).toStrictEqual({ type: 'string', enum: ['a', 'b'] });
    expect((await json((s) => s.integer({ minimum: 0, maximum: 2_147_483_647 }))).json).toStrictEqual({
      type: 'integer',
      format: 'int32',
      minimum: 0,
      maximum: 2_147_483_647,
    });
    expect((await json((s) => s.integer({ minimum: 0, maximum: 2_147_483_648 }))).json).toStrictEqual({
      type: 'integer',
      format: 'int64',
      minimum: 0,
      maximum: 2_147_483_648,
    });
    expect((await json((s) => s.number({ minimum: 0, maximum: 1, decimals: 2 }))).json).toStrictEqual({
      type: 'number',
      format: 'double',
      minimum: 0,
      maximum: 1,
      multipleOf: 0.01,
    });
    expect((await json((s) => s.number({ minimum: 0, maximum: 1 }))).json).toStrictEqual({ type: 'number', format: 'double', minimum: 0, maximum: 1 });
    expect((await json((s) => s.boolean({ description: 'b' }))).json).toStrictEqual({ type: 'boolean', description: 'b' });
    expect((await json((s) => s.array(s.boolean(), { maxItems: 3 }))).json).toStrictEqual({ type: 'array', maxItems: 3, items: { type: 'boolean' } });
    expect((await json((s) => s.record(s.boolean(), { maxProperties: 4 }))).json).toStrictEqual({
      type: 'object',
      maxProperties: 4,
      additionalProperties: { type: 'boolean' },
    });
    expect((await json((s) => s.raw({ type: 'string', const: 'x' }, { example: 'x' }))).json).toStrictEqual({ type: 'string', const: 'x', examples: ['x'] });
  });

  it('states objects exactly: required fields, nothing else, a minimum of fields', async () => {
    expect((await json((s) => s.object({ a: s.boolean(), b: s.optional(s.boolean()) }, { minProperties: 1 }))).json).toStrictEqual({
      type: 'object',
      properties: { a: { type: 'boolean' }, b: { type: 'boolean' } },
      additionalProperties: false,
      required: ['a'],
      minProperties: 1,
    });
    expect((await json((s) => s.object({ b: s.optional(s.boolean()) }))).json).toStrictEqual({
      type: 'object',
      properties: { b: { type: 'boolean' } },
      additionalProperties: false,
    });
  });

  it('adds null to nullable types and enums, and the default', async () => {
    expect((await json((s) => s.nullable(s.string({ maxLength: 1 })))).json).toStrictEqual({ type: ['string', 'null'], maxLength: 1 });
    expect((await json((s) => s.nullable(s.enum(['a'])))).json).toStrictEqual({ type: ['string', 'null'], enum: ['a', null] });
    expect((await json((s) => s.nullable(s.raw({ $ref: '#/x' })))).json).toStrictEqual({ $ref: '#/x' });
    expect((await json((s) => s.withDefault(s.integer({ minimum: 1, maximum: 2 }), 1))).json).toStrictEqual({
      type: 'integer',
      format: 'int32',
      minimum: 1,
      maximum: 2,
      default: 1,
    });
    expect((await json((s) => s.withDefault(s.boolean(), false))).json).toStrictEqual({ type: 'boolean', default: false });
  });

  it('describes a named schema once and refers to it, itself included', async () => {
    const { json: ref, registry } = await json((s) => s.named('Thing', s.object({ a: s.boolean() })));
    expect(ref).toStrictEqual({ $ref: '#/components/schemas/Thing' });
    expect(Object.fromEntries(registry)).toStrictEqual({
      Thing: { type: 'object', properties: { a: { type: 'boolean' } }, additionalProperties: false, required: ['a'] },
    });
    // A schema that contains itself is described once, by reference.
    const { json: node, registry: nodes } = await json((s) => {
      const fields: Record<string, Parameters<S['optional']>[0]> = { name: s.string({ maxLength: 5 }) };
      const named = s.named('Node', s.object(fields));
      fields.next = s.optional(named);
      return named;
    });
    expect(node).toStrictEqual({ $ref: '#/components/schemas/Node' });
    expect(nodes.get('Node')).toStrictEqual({
      type: 'object',
      properties: { name: { type: 'string', maxLength: 5 }, next: { $ref: '#/components/schemas/Node' } },
      additionalProperties: false,
      required: ['name'],
    });
  });

  it('counts code points as JSON Schema does', async () => {
    const { schema } = await load();
    expect(schema.codePointLength('abc')).toBe(3);
    expect(schema.codePointLength('😀😀')).toBe(2);
    expect(schema.codePointLength('\uD83D')).toBe(1);
    expect(schema.codePointLength('\uDE00\uD83D')).toBe(2);
    expect(schema.codePointLength('a\uD83Db')).toBe(3);
    expect(schema.codePointLength('')).toBe(0);
    // The edges of the surrogate ranges: a high one (D800-DBFF) then a low one (DC00-DFFF) is one.
    for (const pair of ['\uD800\uDC00', '\uDBFF\uDFFF', '\uD800\uDFFF', '\uDBFF\uDC00']) expect(schema.codePointLength(pair), escape(pair)).toBe(1);
    for (const notPair of ['\uD7FF\uDC00', '\uDC00\uDC00', '\uD800\uDBFF', '\uD800\uE000', 'x\uDE00', '\uD800x']) {
      expect(schema.codePointLength(notPair), escape(notPair)).toBe(2);
    }
  });

  it('calls text storable unless it holds NUL or an unpaired surrogate', async () => {
    const { schema } = await load();
    expect(['plain', '😀', ''].map(schema.isStorableText)).toEqual([true, true, true]);
    expect(['a\0', '\uD83D', 'x\uDE00'].map(schema.isStorableText)).toEqual([false, false, false]);
  });
});
