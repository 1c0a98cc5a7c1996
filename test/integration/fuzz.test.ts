// Every operation of the OpenAPI document, fuzzed: generated and hostile values (NUL, unpaired
// surrogates, huge strings, numbers, arrays and objects where strings go, prototype keys, invalid
// percent-encoding, repeated parameters) in every path and query parameter and every body field.
// The property: never a 5xx, and every error is the envelope. Property-based with fast-check, so a
// failure shrinks to a small request and prints the seed to replay it.
import fc from 'fast-check';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/app';
import { register, type Account } from '../helpers/auth';

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
}
interface Operation {
  method: string;
  path: string;
  operationId: string;
  parameters: Parameter[];
  bodyFields: string[];
  bearer: boolean;
}

let ctx: TestContext;
let operations: Operation[];
let account: Account;

/** Resolves `$ref`s to components (parameters and schemas are shared there). */
function deref<T>(doc: Record<string, unknown>, value: unknown): T {
  const ref = (value as { $ref?: string }).$ref;
  if (!ref) return value as T;
  return ref
    .slice(2)
    .split('/')
    .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], doc) as T;
}

beforeAll(async () => {
  // No diagnostic routes: one of them exists to throw.
  ctx = await createTestContext({ env: { ENABLE_DIAGNOSTIC_ROUTES: 'false' } });
  account = await register(ctx.app);
  const doc = (await request(ctx.app).get('/openapi.json').expect(200)).body as Record<string, unknown>;
  operations = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Record<string, unknown>>>)) {
    for (const [method, op] of Object.entries(item)) {
      const parameters = ((op.parameters as unknown[] | undefined) ?? []).map((p) => deref<Parameter>(doc, p)).filter((p) => p.in !== 'header');
      const content = (op.requestBody as { content?: Record<string, { schema: unknown }> } | undefined)?.content?.['application/json'];
      const schema = content ? deref<{ properties?: Record<string, unknown> }>(doc, content.schema) : undefined;
      const security = (op.security as Record<string, unknown>[] | undefined) ?? [];
      operations.push({
        method,
        path,
        operationId: op.operationId as string,
        parameters,
        bodyFields: Object.keys(schema?.properties ?? {}),
        bearer: security.some((s) => 'bearerAuth' in s),
      });
    }
  }
});
afterAll(async () => ctx?.close());

// ---- values ------------------------------------------------------------------------------------

/** JSON values a field should never accept, or only just: the shapes attackers and bugs send. */
const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('a\u0000b', '\u0000', '\ud800', 'x\udfff', '\ud800\ud800', 'x'.repeat(5000), '', ' ', '\u202e\u0000', '😀'.repeat(300)),
  fc.constantFrom(0, -1, 1e308, -0, 0.1, 2 ** 53, 12.345, true, false, null),
  fc.constantFrom(
    [],
    ['\u0000'],
    [1, 2],
    Array.from({ length: 50 }, () => 'x'),
    {},
    { $gt: '' },
    { __proto__: { admin: true } },
    [[['deep']]],
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 300 }),
  fc.integer(),
  fc.double(),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 25 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

/** Raw text for a URL: already percent-encoded, or deliberately not valid percent-encoding. */
const hostileUrlText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '%00',
    'a%00b',
    '%',
    '%zz',
    '%E0%A4%A',
    '%ED%A0%80',
    '%C0%AF',
    '%2e%2e',
    '%2e%2e%2f',
    'x'.repeat(3000),
    '%20',
    '-1',
    '1e3',
    '0x10',
    'NaN',
    '',
  ),
  fc.string({ unit: 'binary', maxLength: 30 }).map((s) => {
    try {
      return encodeURIComponent(s);
    } catch {
      return '%ZZ'; // an unpaired surrogate cannot be encoded: send what cannot be decoded
    }
  }),
  fc.integer().map(String),
);

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype'];

interface Case {
  params: Record<string, string>;
  query: [string, string][];
  body: Record<string, unknown>;
  prototypeKey: string | undefined;
  rawBody: string | undefined;
  withToken: boolean;
}

function caseFor(op: Operation): fc.Arbitrary<Case> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  return fc.record({
    params: fc.record(Object.fromEntries(pathParams.map((p) => [p.name, hostileUrlText]))),
    // Each declared parameter absent, once, or repeated; now and then one nobody declared.
    query: fc
      .tuple(
        ...queryParams.map((p) => fc.array(hostileUrlText, { maxLength: 2 }).map((vs) => vs.map((v): [string, string] => [p.name, v]))),
        fc.option(fc.tuple(fc.constantFrom('__proto__', 'constructor[x]', 'a[b]', 'sort[$ne]'), hostileUrlText), { nil: undefined }),
      )
      .map(([...parts]) => parts.flatMap((part) => (Array.isArray(part) ? (part as [string, string][]) : part ? [part as [string, string]] : []))),
    body: fc.record(Object.fromEntries(op.bodyFields.map((f) => [f, hostileJson])), { requiredKeys: [] }),
    prototypeKey: fc.option(fc.constantFrom(...PROTOTYPE_KEYS), { nil: undefined }),
    // Now and then a body that is not an object at all, or not JSON.
    rawBody: fc.option(fc.constantFrom('[]', '"text"', '42', 'null', '{', '{"a":', '\u0000', '[{"__proto__":{}}]'), { nil: undefined, freq: 8 }),
    withToken: fc.boolean(),
  });
}

function send(op: Operation, c: Case, token: string): request.Test {
  const path = op.path.replace(/\{(\w+)\}/g, (_m, name: string) => c.params[name] ?? 'x');
  const query = c.query.map(([k, v]) => `${encodeURIComponent(k)}=${v}`).join('&');
  const url = query ? `${path}?${query}` : path;
  const agent = request(ctx.app);
  const req = agent[op.method as 'get' | 'post' | 'patch' | 'delete'](url);
  if (op.bearer && c.withToken) req.set('Authorization', `Bearer ${token}`);
  if (op.method === 'get' || op.method === 'delete') return req;
  let text = c.rawBody;
  if (text === undefined) {
    const json = JSON.stringify(c.body);
    // A prototype key must be an own key of the JSON text, which an object literal cannot hold.
    text = c.prototypeKey ? `{"${c.prototypeKey}":{"admin":true}${json === '{}' ? '' : `,${json.slice(1, -1)}`}}` : json;
  }
  return req.set('Content-Type', 'application/json').send(text);
}

function expectEnvelope(op: Operation, res: request.Response): void {
  const where = `${op.operationId}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`;
  expect(res.status, where).toBeLessThan(500);
  if (res.status >= 400) {
    expect(res.headers['content-type'], where).toMatch(/^application\/json/);
    expect(res.body.error, where).toEqual(
      expect.objectContaining({ code: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String), requestId: res.headers['x-request-id'] }),
    );
  }
}

describe('fuzzing every operation of the document', () => {
  it('covers every operation and every parameter and body field the document declares', () => {
    expect(operations.length).toBeGreaterThanOrEqual(20);
    expect(operations.find((o) => o.operationId === 'listItems')?.parameters.map((p) => p.name)).toEqual(
      expect.arrayContaining(['page', 'limit', 'sort', 'tag']),
    );
    expect(operations.find((o) => o.operationId === 'createItem')?.bodyFields).toEqual(expect.arrayContaining(['name', 'description', 'price', 'tags']));
  });

  it('never answers 5xx, and every error is the envelope', async () => {
    const runs = Number(process.env.FUZZ_RUNS ?? 40);
    let token = account.accessToken;
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(caseFor(op), async (c) => {
          const res = await send(op, c, token);
          expectEnvelope(op, res);
          // A fuzzed logout, session end or password change may end the session: start another.
          if (res.status === 401 && res.body.error.code === 'token_revoked') token = (await register(ctx.app)).accessToken;
          if (res.status === 200 && typeof res.body.accessToken === 'string') token = res.body.accessToken as string;
        }),
        { numRuns: runs, endOnFailure: true },
      );
    }
  }, 300_000);
});
