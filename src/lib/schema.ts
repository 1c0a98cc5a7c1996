// The schema vocabulary routes are declared with. One declaration of a field gives three things:
// its TypeScript type (Infer), its JSON Schema for the OpenAPI document (toJsonSchema), and the
// rules the request validator compiles into express-validator chains (src/http/validation.ts).
// It is deliberately small: the kinds a JSON API's inputs and outputs need, each with the options
// both a validator and a JSON Schema can state exactly, so that the two cannot disagree.
//
// Lengths count Unicode code points, as JSON Schema's minLength/maxLength do.

export type JsonSchema = Record<string, unknown>;

/**
 * The UUIDs a `format: 'uuid'` string accepts: versions 1-8 with the RFC variant, nil and max (what
 * express-validator's isUUID() accepts). Written into the document beside the format, which alone
 * would let a client send versions the server refuses.
 */
export const UUID_PATTERN =
  '^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|0{8}-0{4}-0{4}-0{4}-0{12}|[fF]{8}-[fF]{4}-[fF]{4}-[fF]{4}-[fF]{12})$';

interface Common {
  description?: string;
  example?: unknown;
}

interface Node<T> extends Common {
  /** Type carrier only: never set at run time. */
  readonly __type?: T;
  /** Absent is allowed (request fields); with a default, absent means the default. */
  readonly optional?: { default?: unknown };
  readonly nullable?: boolean;
  /** Emitted once under components/schemas and referenced by name. */
  readonly ref?: string;
}

export interface StringSchema<T = unknown> extends Node<T> {
  readonly kind: 'string';
  readonly minLength: number;
  readonly maxLength: number;
  /**
   * Leading and trailing whitespace is removed after the type and maxLength checks (the raw value
   * is bounded), before minLength: "   " is not a name.
   */
  readonly trim?: boolean;
  readonly format?: 'email' | 'uuid' | 'date-time' | 'uri';
  /** A regular expression the whole (untrimmed) value must match; also written to the document. */
  readonly pattern?: string;
}

export interface EnumSchema<V extends string = string, T = unknown> extends Node<T> {
  readonly kind: 'enum';
  readonly values: readonly V[];
}

export interface IntegerSchema<T = unknown> extends Node<T> {
  readonly kind: 'integer';
  readonly minimum: number;
  readonly maximum: number;
}

export interface NumberSchema<T = unknown> extends Node<T> {
  readonly kind: 'number';
  readonly minimum: number;
  readonly maximum: number;
  /** At most this many decimal places (JSON Schema: multipleOf 10^-n). */
  readonly decimals?: number;
}

export interface BooleanSchema<T = unknown> extends Node<T> {
  readonly kind: 'boolean';
}

export interface ArraySchema<T = unknown> extends Node<T> {
  readonly kind: 'array';
  readonly items: AnySchema;
  readonly maxItems: number;
}

export type Fields = Record<string, AnySchema>;

export interface ObjectSchema<T = unknown> extends Node<T> {
  readonly kind: 'object';
  readonly fields: Fields;
  /** At least this many fields present (a partial update that changes nothing is refused). */
  readonly minProperties?: number;
}

/** An object whose keys are data (responses only): every value has the same schema. */
export interface RecordSchema<T = unknown> extends Node<T> {
  readonly kind: 'record';
  readonly values: AnySchema;
  readonly maxProperties: number;
}

/** A JSON Schema written by hand: responses only (the validator never sees it). */
export interface RawSchema<T = unknown> extends Node<T> {
  readonly kind: 'raw';
  readonly schema: JsonSchema;
}

/** Any declaration; the carried type is erased (unknown) here and kept by Infer on the concrete ones. */
export type AnySchema = StringSchema | EnumSchema | IntegerSchema | NumberSchema | BooleanSchema | ArraySchema | ObjectSchema | RecordSchema | RawSchema;

export type Infer<S> = S extends Node<infer T> ? T : never;

type IsOptional<S> = S extends { optional: object } ? (S extends { optional: { default: unknown } } ? false : true) : false;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The validated object type of a set of fields: optional fields without a default may be absent. */
export type InferFields<F extends Fields> = Simplify<
  { [K in keyof F as IsOptional<F[K]> extends true ? never : K]: Infer<F[K]> } & {
    [K in keyof F as IsOptional<F[K]> extends true ? K : never]?: Infer<F[K]>;
  }
>;

type Options<S> = Omit<S, 'kind' | '__type' | 'optional' | 'nullable' | 'ref'>;
type Nullable<S extends AnySchema> = Omit<S, '__type'> & Node<Infer<S> | null>;

export const s = {
  string: (o: Partial<Options<StringSchema>> & { maxLength: number }): StringSchema<string> => ({ kind: 'string', minLength: 0, ...o }),
  enum: <const V extends string>(values: readonly V[], o: Common = {}): EnumSchema<V, V> => ({ kind: 'enum', values, ...o }),
  integer: (o: Options<IntegerSchema>): IntegerSchema<number> => ({ kind: 'integer', ...o }),
  number: (o: Options<NumberSchema>): NumberSchema<number> => ({ kind: 'number', ...o }),
  boolean: (o: Common = {}): BooleanSchema<boolean> => ({ kind: 'boolean', ...o }),
  array: <I extends AnySchema>(items: I, o: Common & { maxItems: number }): ArraySchema<Infer<I>[]> => ({ kind: 'array', items, ...o }),
  object: <F extends Fields>(fields: F, o: Common & { minProperties?: number } = {}): ObjectSchema<InferFields<F>> => ({
    kind: 'object',
    fields,
    ...o,
  }),
  record: <V extends AnySchema>(values: V, o: Common & { maxProperties: number }): RecordSchema<Record<string, Infer<V>>> => ({
    kind: 'record',
    values,
    ...o,
  }),
  raw: <T>(schema: JsonSchema, o: Common = {}): RawSchema<T> => ({ kind: 'raw', schema, ...o }),

  /** May be absent. */
  optional: <S extends AnySchema>(schema: S): S & { optional: object } => ({ ...schema, optional: {} }),
  /** May be absent; absent means `value` (the handler always sees a value). */
  withDefault: <S extends AnySchema>(schema: S, value: Infer<S>): S & { optional: { default: Infer<S> } } => ({
    ...schema,
    optional: { default: value },
  }),
  /** May be null. */
  nullable: <S extends AnySchema>(schema: S): Nullable<S> => ({ ...schema, nullable: true }) as Nullable<S>,
  /** Described once under components/schemas with this name. */
  named: <S extends AnySchema>(name: string, schema: S): S => ({ ...schema, ref: name }),
};

/** Collects named schemas while converting, for components/schemas. */
export type SchemaRegistry = Map<string, JsonSchema>;

const withCommon = (node: Common, json: JsonSchema): JsonSchema => {
  if (node.description !== undefined) json.description = node.description;
  if (node.example !== undefined) json.examples = [node.example];
  return json;
};

function body(schema: AnySchema, registry: SchemaRegistry): JsonSchema {
  switch (schema.kind) {
    case 'string': {
      const json: JsonSchema = { type: 'string', maxLength: schema.maxLength };
      if (schema.minLength > 0 && !schema.trim) json.minLength = schema.minLength;
      if (schema.trim && schema.minLength > 0) {
        // After trimming at least minLength characters remain: some non-space character must be
        // there, and (for longer minimums) enough characters between the first and last of them.
        json.pattern = schema.minLength === 1 ? '\\S' : `^\\s*\\S[\\s\\S]{${schema.minLength - 2},}\\S\\s*$`;
      }
      if (schema.pattern !== undefined) json.pattern = schema.pattern;
      else if (schema.format === 'uuid') json.pattern = UUID_PATTERN;
      if (schema.format !== undefined) json.format = schema.format;
      return json;
    }
    case 'enum':
      return { type: 'string', enum: [...schema.values] };
    case 'integer':
      return { type: 'integer', format: schema.maximum > 2_147_483_647 ? 'int64' : 'int32', minimum: schema.minimum, maximum: schema.maximum };
    case 'number': {
      const json: JsonSchema = { type: 'number', format: 'double', minimum: schema.minimum, maximum: schema.maximum };
      if (schema.decimals !== undefined) json.multipleOf = 10 ** -schema.decimals;
      return json;
    }
    case 'boolean':
      return { type: 'boolean' };
    case 'array':
      return { type: 'array', maxItems: schema.maxItems, items: toJsonSchema(schema.items, registry) };
    case 'object': {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const [name, field] of Object.entries(schema.fields)) {
        properties[name] = toJsonSchema(field, registry);
        if (!field.optional) required.push(name);
      }
      const json: JsonSchema = { type: 'object', properties, additionalProperties: false };
      if (required.length > 0) json.required = required;
      if (schema.minProperties !== undefined) json.minProperties = schema.minProperties;
      return json;
    }
    case 'record':
      return { type: 'object', maxProperties: schema.maxProperties, additionalProperties: toJsonSchema(schema.values, registry) };
    case 'raw':
      return { ...schema.schema };
  }
}

/** JSON Schema (2020-12, as OpenAPI 3.1 uses it) of a declaration; named schemas become $refs. */
export function toJsonSchema(schema: AnySchema, registry: SchemaRegistry): JsonSchema {
  if (schema.ref !== undefined) {
    if (!registry.has(schema.ref)) {
      registry.set(schema.ref, {}); // placeholder first: a schema may refer to itself
      registry.set(schema.ref, toJsonSchema({ ...schema, ref: undefined }, registry));
    }
    return { $ref: `#/components/schemas/${schema.ref}` };
  }
  const json = withCommon(schema, body(schema, registry));
  if (schema.nullable) {
    if (typeof json.type === 'string') json.type = [json.type, 'null'];
    if (Array.isArray(json.enum)) json.enum = [...(json.enum as unknown[]), null];
  }
  if (schema.optional?.default !== undefined) json.default = schema.optional.default;
  return json;
}

/**
 * Text that can be stored as sent: no NUL character (PostgreSQL's text refuses it, which surfaced
 * as a 500) and no unpaired surrogate (not valid Unicode: stored, it comes back altered as U+FFFD).
 */
export function isStorableText(value: string): boolean {
  return !value.includes('\0') && value.isWellFormed();
}

/** Number of Unicode code points: what JSON Schema's length keywords count. */
export function codePointLength(value: string): number {
  let surrogates = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < value.length) {
      const d = value.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        surrogates++;
        i++;
      }
    }
  }
  return value.length - surrogates;
}
