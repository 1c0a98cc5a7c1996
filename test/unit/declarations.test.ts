// Route declarations drive three things: the express-validator chains, the fast path for path and
// query parameters, and the OpenAPI document. This file holds them to each other for every route
// the app mounts (diagnostic routes and the API description included):
//   - the chains and the document's JSON Schema accept and refuse the same inputs (types, ranges,
//     enums, lengths, required fields, unknown fields), checked with Ajv on generated values;
//   - the fast path, when it answers, answers what the chains answer, and takes the usual values;
//   - every route on the app is in the document, and every operation has a unique id.
import { randomUUID } from 'node:crypto';
import type { Request } from 'express';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { mountedRoutes } from '../../src/app';
import { describeRoutes, inertApp } from '../../src/cli/openapi';
import { loadConfig } from '../../src/config';
import { toJsonSchema, type AnySchema, type Fields, type JsonSchema } from '../../src/lib/schema';
import type { MountedRoute } from '../../src/http/module';
import { buildDocument } from '../../src/http/openapi';
import { compileValidator } from '../../src/http/validation';

const config = loadConfig({ NODE_ENV: 'test', ENABLE_DIAGNOSTIC_ROUTES: 'true', API_DOCS: 'true' });
const routes = describeRoutes(config);
const label = (m: MountedRoute) => `${m.route.method.toUpperCase()} ${m.path}`;

const ajv = new Ajv2020({ strict: false, multipleOfPrecision: 6, allErrors: true });
addFormats(ajv);
const schemaOf = (schema: AnySchema): JsonSchema => toJsonSchema(schema, new Map());
const describedAccepts = (schema: AnySchema, value: unknown): boolean => ajv.validate(schemaOf(schema), value) === true;

// ---- values to try, from the declaration ---------------------------------------------------

const text = (n: number) => 'x'.repeat(Math.max(0, n));

/** A value the declaration accepts, for building otherwise-valid requests. */
function sample(schema: AnySchema): unknown {
  switch (schema.kind) {
    case 'string':
      if (schema.format === 'email') return 'ada@example.com';
      if (schema.format === 'uuid') return randomUUID();
      return text(Math.max(schema.minLength, 1));
    case 'enum':
      return schema.values[0];
    case 'integer':
    case 'number':
      return schema.minimum;
    case 'boolean':
      return true;
    case 'array':
      return [sample(schema.items)];
    default:
      return {};
  }
}

/** Values around every rule of a declaration: boundaries, wrong types, odd spellings. */
function candidates(schema: AnySchema, inBody: boolean): unknown[] {
  // Path and query values are strings: hpp has reduced repeated query keys to the last one before
  // validation runs (?page=1&page=2 is page=2), so arrays never reach the validator there.
  const wrongTypes: unknown[] = inBody ? [null, 5, true, { $gt: '' }, ['a']] : [];
  switch (schema.kind) {
    case 'string': {
      if (schema.format === 'email')
        return ['ada@example.com', 'Ada.Lovelace+x@mail.example.org', 'not-an-email', 'a@', '@b.co', `${text(250)}@x.com`, '', ...wrongTypes];
      if (schema.format === 'uuid') {
        const id = randomUUID();
        return [
          id,
          id.toUpperCase(),
          '00000000-0000-0000-0000-000000000000',
          'ffffffff-ffff-ffff-ffff-ffffffffffff',
          '6ba7b810-9dad-11d1-80b4-00c04fd430c8',
          '017f22e2-79b0-7cc3-98c4-dc0c0c07398f',
          '6ba7b810-9dad-01d1-80b4-00c04fd430c8',
          '6ba7b810-9dad-91d1-80b4-00c04fd430c8',
          '6ba7b810-9dad-41d1-c0b4-00c04fd430c8',
          id.replace(/-/g, ''),
          `${id} `,
          ` ${id}`,
          `{${id}}`,
          'not-a-uuid',
          '',
          ...wrongTypes,
        ];
      }
      const { minLength: min, maxLength: max } = schema;
      return [
        text(min),
        text(max),
        text(max + 1),
        text(min - 1),
        '',
        ' ',
        '   ',
        ` ${text(Math.max(min, 1))} `,
        ` ${text(max)}`,
        '😀'.repeat(max),
        '😀'.repeat(max + 1),
        'café au lait',
        'line\nbreak',
        'a\uFE0F',
        ...wrongTypes,
      ];
    }
    case 'enum':
      return [...schema.values, 'bogus', '', schema.values[0]!.toUpperCase(), ...wrongTypes];
    case 'integer': {
      const { minimum: lo, maximum: hi } = schema;
      const values = [lo, hi, lo - 1, hi + 1, lo + 1];
      if (inBody) return [...values, 1.5, String(lo), ...wrongTypes];
      return [...values.map(String), '007', '+5', '-1', ' 1', '1.0', '1e3', '', 'ten', '99999999999999999999', ...wrongTypes];
    }
    case 'number': {
      const { minimum: lo, maximum: hi } = schema;
      return [lo, hi, lo - 1, hi + 1, 19.99, 0.1, 1.005, 3, String(lo), ...wrongTypes];
    }
    case 'boolean':
      return inBody ? [true, false, 'true', 0, null] : ['true', 'false', 'yes', ''];
    case 'array':
      return [
        [],
        [sample(schema.items)],
        Array.from({ length: schema.maxItems }, () => sample(schema.items)),
        Array.from({ length: schema.maxItems + 1 }, () => sample(schema.items)),
        ...candidates(schema.items, true).map((v) => [v]),
        'a,b',
        null,
      ];
    default:
      return [];
  }
}

// ---- running the chains on a request-shaped object ------------------------------------------

type FakeRequest = Pick<Request, 'params' | 'query' | 'body'>;
const fakeRequest = (r: Partial<FakeRequest>) => ({ params: {}, query: {}, body: undefined, headers: {}, ...r }) as unknown as Request;

/** The smallest body the route accepts (for trying its parameters alone). */
function validBody(route: MountedRoute['route']): unknown {
  if (!route.body) return undefined;
  const fields = Object.entries(route.body.fields);
  const required = fields.filter(([, f]) => !f.optional);
  // A body that must change something gets one field even when none is required.
  const chosen = required.length > 0 || !route.body.minProperties ? required : fields.slice(0, 1);
  return Object.fromEntries(chosen.map(([n, f]) => [n, sample(f)]));
}

async function chainsAccept(route: MountedRoute['route'], r: Partial<FakeRequest>): Promise<boolean> {
  const outcome = await compileValidator(route).run(fakeRequest(r));
  return 'input' in outcome;
}

/** A query or path value as a client's OpenAPI tooling reads it for this schema: numbers as numbers. */
function asDescribed(schema: AnySchema, raw: unknown): unknown {
  if (schema.kind === 'integer' && typeof raw === 'string' && /^[+-]?\d+$/.test(raw)) return Number(raw);
  if (schema.kind === 'boolean' && (raw === 'true' || raw === 'false')) return raw === 'true';
  return raw;
}

const withInput = routes.filter((m) => m.route.params || m.route.query || m.route.body);

describe('every route is described, once', () => {
  it('has unique operation ids and a document that lists every mounted route', () => {
    const document = buildDocument(routes, { config, version: 'test' });
    const paths = document.paths as Record<string, Record<string, unknown>>;
    const described = Object.entries(paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`));
    expect(described.sort()).toEqual(routes.map((m) => `${m.route.method.toUpperCase()} ${m.path.replace(/:(\w+)/g, '{$1}')}`).sort());
    expect(new Set(routes.map((m) => m.route.operationId)).size).toBe(routes.length);
  });

  it('has no route on the app that the module list did not declare (nothing added beside the mechanism)', () => {
    const app = inertApp(config);
    const declared = new Set(mountedRoutes(app).map((m) => `${m.route.method} ${m.path}`));
    interface RouteLike {
      path: string;
      methods: Record<string, boolean>;
    }
    const onApp = app.router.stack
      .map((layer) => layer.route as unknown as RouteLike | undefined)
      .filter((r): r is RouteLike => r !== undefined && !r.methods._all)
      .flatMap((r) => Object.keys(r.methods).map((method) => `${method} ${r.path}`));
    expect(onApp.length).toBeGreaterThan(0);
    for (const route of onApp) expect(declared, `${route} is served but not declared through a module`).toContain(route);
  });
});

describe.each(withInput.map((m) => [label(m), m] as const))('%s: validator and description agree', (_name, mounted) => {
  const { route } = mounted;

  for (const location of ['params', 'query'] as const) {
    const fields: Fields = route[location] ?? {};
    for (const [name, schema] of Object.entries(fields)) {
      const others = Object.fromEntries(
        Object.entries(fields)
          .filter(([n, f]) => n !== name && !f.optional)
          .map(([n, f]) => [n, String(sample(f))]),
      );
      it.each(candidates(schema, false).map((v) => [JSON.stringify(v), v]))(`${location}.${name} = %s`, async (_v, value) => {
        const r = { body: validBody(route), [location]: { ...others, [name]: value } };
        expect(await chainsAccept(route, r)).toBe(describedAccepts(schema, asDescribed(schema, value)));
      });
      if (!schema.optional && location === 'query') {
        it(`query.${name} is required by both`, async () => {
          expect(await chainsAccept(route, { body: validBody(route), query: others })).toBe(false);
        });
      }
    }
  }

  const bodySchema = route.body;
  if (bodySchema) {
    const fields = Object.entries(bodySchema.fields);
    const valid = Object.fromEntries(fields.filter(([, f]) => !f.optional).map(([n, f]) => [n, sample(f)]));
    const full = Object.fromEntries(fields.map(([n, f]) => [n, sample(f)]));
    const agree = async (body: unknown) => {
      const required = { params: Object.fromEntries(Object.entries(route.params ?? {}).map(([n, f]) => [n, String(sample(f))])) };
      expect(await chainsAccept(route, { ...required, body }), JSON.stringify(body)).toBe(describedAccepts(bodySchema, body));
    };
    it('the smallest and the fullest valid bodies', async () => {
      await agree(valid);
      await agree(full);
    });
    it('unknown fields, an empty object and a non-object', async () => {
      await agree({ ...valid, role: 'admin' });
      await agree({});
      await agree([valid]);
    });
    for (const [name, schema] of fields) {
      it(`${name} absent`, async () => {
        const { [name]: _absent, ...rest } = full;
        await agree(rest);
      });
      it.each(candidates(schema, true).map((v) => [JSON.stringify(v)?.slice(0, 60), v]))(`${name} = %s`, async (_v, value) => {
        await agree({ ...valid, [name]: value });
      });
    }
  }
});

describe.each(withInput.filter((m) => m.route.params || m.route.query).map((m) => [label(m), m] as const))(
  '%s: the fast path answers as the chains do',
  (_name, mounted) => {
    const { route } = mounted;
    const validator = compileValidator(route);
    const chains = async (r: Partial<FakeRequest>) => {
      const outcome = await validator.run(fakeRequest({ body: validBody(route), ...r }));
      return 'input' in outcome ? { params: outcome.input.params, query: outcome.input.query } : undefined;
    };
    const usual: Partial<FakeRequest>[] = [];
    const all: Partial<FakeRequest>[] = [];
    const requiredOf = (fields: Fields = {}) =>
      Object.fromEntries(
        Object.entries(fields)
          .filter(([, f]) => !f.optional)
          .map(([n, f]) => [n, String(sample(f))]),
      );
    const baseline = { params: requiredOf(route.params), query: requiredOf(route.query) };
    usual.push(baseline, { ...baseline, query: { ...baseline.query, unrelated: 'ignored' } });
    for (const location of ['params', 'query'] as const) {
      for (const [name, schema] of Object.entries(route[location] ?? {})) {
        const typical =
          schema.kind === 'enum'
            ? [...schema.values]
            : schema.kind === 'integer'
              ? [String(schema.minimum), String(schema.maximum)]
              : schema.kind === 'string'
                ? [String(sample(schema)), ...(schema.format ? [] : ['café au lait'.slice(0, schema.maxLength)])]
                : [];
        for (const value of typical) usual.push({ ...baseline, [location]: { ...baseline[location], [name]: value } });
        for (const value of candidates(schema, false)) all.push({ ...baseline, [location]: { ...baseline[location], [name]: value } });
      }
    }

    it.each(usual.map((r) => [JSON.stringify(r), r]))('takes %s, converting as the chains do', async (_r, r) => {
      const fast = validator.fast(fakeRequest(r));
      expect(fast).toBeDefined();
      expect(await chains(r)).toEqual(fast);
    });

    it.each(all.map((r) => [JSON.stringify(r), r]))('never answers otherwise than the chains: %s', async (_r, r) => {
      const fast = validator.fast(fakeRequest(r));
      if (fast !== undefined) expect(await chains(r)).toEqual(fast);
    });
  },
);
