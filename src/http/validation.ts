// Request validation compiled from a route's declared fields (src/lib/schema.ts). express-validator
// is the validator: each field becomes a chain, unknown body fields are refused with checkExact,
// and failures become 422 validation_failed listing every failing field (never its value: it may
// be a password). For path and query parameters, the same declaration also compiles to a fast
// path: the values clients normally send (canonical integers, enum members, plain strings) are
// checked and converted without running the chains, which cost several objects and promises per
// field on every request. When the fast path is unsure it steps aside and the chains decide; a
// unit test holds the two to the same answers for every declared route.
import type { Request, RequestHandler } from 'express';
import { body, checkExact, matchedData, param, query, validationResult, type ValidationChain, type ValidationError } from 'express-validator';
import type { AccessClaims } from '../lib/access-tokens';
import { AppError, type ErrorDetail } from '../lib/errors';
import { codePointLength, isStorableText, UUID_PATTERN, type AnySchema, type Fields, type ObjectSchema } from '../lib/schema';

type Location = 'params' | 'query' | 'body';

export interface RequestDeclaration {
  params?: Fields;
  query?: Fields;
  body?: ObjectSchema;
}

/** A route's input as its handler receives it (typed per route by RouteInput in route.ts). */
export interface ValidatedInput {
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: Record<string, unknown>;
  /** The verified token's claims on bearer routes (authentication runs before validation). */
  auth: AccessClaims | undefined;
}

const EMPTY: Record<string, unknown> = Object.freeze({});

// ---- messages: what a client reads in details[].message --------------------------------------

function lengthMessage(min: number, max: number): string {
  return min > 0 ? `must be ${min} to ${max} characters` : `must be at most ${max} characters`;
}

function decimalsPhrase(decimals: number | undefined): string {
  return decimals === undefined ? '' : ` with at most ${decimals} decimal${decimals === 1 ? '' : 's'}`;
}

// ---- chains ----------------------------------------------------------------------------------

const builders = { params: param, query, body };
// The fast path leaves any surrogate (paired or not) and NUL to the chains, which say which is wrong.
const NOT_PLAIN_TEXT = /[\0\uD800-\uDFFF]/;

/** A JSON number with at most `decimals` decimal places (tolerant of binary floating point). */
function hasDecimals(value: number, decimals: number): boolean {
  const scaled = value * 10 ** decimals;
  return Math.abs(Math.round(scaled) - scaled) < 1e-6;
}

function scalarChain(chain: ValidationChain, schema: AnySchema, location: Location): ValidationChain {
  // Path and query values are always strings; JSON bodies carry real types and are never coerced.
  const fromText = location !== 'body';
  switch (schema.kind) {
    case 'string': {
      const { minLength: min, maxLength: max } = schema;
      let c = chain
        .isString()
        .withMessage('must be a string')
        .bail()
        .custom(isStorableText)
        .withMessage('must not contain NUL characters or unpaired surrogates')
        .bail();
      if (schema.format === 'email') {
        c = c
          .custom((v: string) => codePointLength(v) <= max)
          .withMessage('must be an email')
          .bail()
          .trim()
          .isEmail({ allow_ip_domain: false, require_tld: false })
          .withMessage('must be an email');
        return c;
      }
      if (schema.format === 'uuid') {
        // eslint-disable-next-line security/detect-non-literal-regexp -- the pattern is the route declaration's (code), never a request's
        return c.matches(new RegExp(schema.pattern ?? UUID_PATTERN, 'u')).withMessage('must be a UUID');
      }
      if (schema.format !== undefined) throw new Error(`string format ${schema.format} is not accepted in requests`);
      // eslint-disable-next-line security/detect-non-literal-regexp -- the pattern is the route declaration's (code), never a request's
      if (schema.pattern !== undefined) c = c.matches(new RegExp(schema.pattern, 'u')).withMessage('has an invalid format').bail();
      c = c
        .custom((v: string) => codePointLength(v) <= max)
        .withMessage(lengthMessage(min, max))
        .bail();
      if (schema.trim) c = c.trim();
      if (min > 0) c = c.custom((v: string) => codePointLength(v) >= min).withMessage(lengthMessage(min, max));
      return c;
    }
    case 'enum': {
      const allowed = new Set<string>(schema.values);
      return chain.custom((v: unknown) => typeof v === 'string' && allowed.has(v)).withMessage(`must be one of ${schema.values.join(', ')}`);
    }
    case 'integer': {
      const message = `must be an integer from ${schema.minimum} to ${schema.maximum}`;
      if (fromText) return chain.isInt({ min: schema.minimum, max: schema.maximum }).withMessage(message).toInt();
      return chain.custom((v: unknown) => Number.isSafeInteger(v) && (v as number) >= schema.minimum && (v as number) <= schema.maximum).withMessage(message);
    }
    case 'number': {
      if (fromText) throw new Error('number fields are accepted in JSON bodies only');
      const { minimum, maximum, decimals } = schema;
      return chain
        .custom(
          (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= minimum && v <= maximum && (decimals === undefined || hasDecimals(v, decimals)),
        )
        .withMessage(`must be a number from ${minimum} to ${maximum}${decimalsPhrase(decimals)}`);
    }
    case 'boolean':
      if (fromText) return chain.isIn(['true', 'false']).withMessage('must be true or false').toBoolean(true);
      return chain.custom((v: unknown) => typeof v === 'boolean').withMessage('must be true or false');
    default:
      throw new Error(`a ${schema.kind} cannot be validated as a single ${location} value`);
  }
}

function withPresence(chain: ValidationChain, schema: AnySchema): ValidationChain {
  if (schema.optional) return chain.optional(schema.nullable ? { values: 'null' } : undefined);
  if (schema.nullable) return chain.if((v: unknown) => v !== null);
  return chain;
}

function fieldChains(location: Location, name: string, schema: AnySchema): ValidationChain[] {
  const build = builders[location];
  if (schema.kind === 'array') {
    if (location !== 'body') throw new Error('arrays are accepted in JSON bodies only');
    const list = withPresence(build(name), schema).isArray({ max: schema.maxItems }).withMessage(`must be an array of at most ${schema.maxItems} items`);
    return [list, scalarChain(build(`${name}.*`), schema.items, location)];
  }
  if (schema.kind === 'object' || schema.kind === 'record' || schema.kind === 'raw')
    throw new Error(`nested ${schema.kind} fields are not accepted in requests (${name})`);
  return [scalarChain(withPresence(build(name), schema), schema, location)];
}

function chainsFor(declaration: RequestDeclaration): ValidationChain[] {
  const chains: ValidationChain[] = [];
  for (const location of ['params', 'query'] as const) {
    for (const [name, schema] of Object.entries(declaration[location] ?? {})) chains.push(...fieldChains(location, name, schema));
  }
  const bodySchema = declaration.body;
  if (bodySchema) {
    const fields = Object.entries(bodySchema.fields).flatMap(([name, schema]) => fieldChains('body', name, schema));
    // Unknown fields are refused, never stored (mass assignment).
    chains.push(checkExact(fields, { locations: ['body'], message: 'is not allowed' }) as unknown as ValidationChain);
    const minimum = bodySchema.minProperties;
    if (minimum !== undefined) {
      chains.push(
        body()
          .custom((v: unknown) => typeof v === 'object' && v !== null && Object.keys(v).length >= minimum)
          .withMessage(minimum === 1 ? 'must change at least one field' : `must have at least ${minimum} fields`),
      );
    }
  }
  return chains;
}

// ---- fast path -------------------------------------------------------------------------------

const UNSURE = Symbol('unsure');
type FastField = (raw: unknown) => unknown;
const CANONICAL_INTEGER = /^(?:0|[1-9][0-9]{0,14})$/;

/** A converter for the common spellings of a path or query value; UNSURE hands over to the chains. */
function fastField(schema: AnySchema): FastField {
  switch (schema.kind) {
    case 'string': {
      if (schema.format === 'email' || schema.trim) return () => UNSURE;
      const pattern = schema.pattern ?? (schema.format === 'uuid' ? UUID_PATTERN : undefined);
      // eslint-disable-next-line security/detect-non-literal-regexp -- the pattern is the route declaration's (code), never a request's
      const re = pattern === undefined ? undefined : new RegExp(pattern, 'u');
      const { minLength: min, maxLength: max } = schema;
      return (raw) => {
        if (typeof raw !== 'string' || NOT_PLAIN_TEXT.test(raw)) return UNSURE;
        if (raw.length < min || raw.length > max || (re && !re.test(raw))) return UNSURE;
        return raw;
      };
    }
    case 'enum': {
      const allowed = new Set<unknown>(schema.values);
      return (raw) => (allowed.has(raw) ? raw : UNSURE);
    }
    case 'integer':
      return (raw) => {
        if (typeof raw !== 'string' || !CANONICAL_INTEGER.test(raw)) return UNSURE;
        const n = Number(raw);
        return n >= schema.minimum && n <= schema.maximum ? n : UNSURE;
      };
    default:
      return () => UNSURE;
  }
}

interface CompiledField {
  name: string;
  fast: FastField;
  optional: boolean;
  fallback: unknown;
}

function compileFields(fields: Fields | undefined): CompiledField[] {
  return Object.entries(fields ?? {}).map(([name, schema]) => ({
    name,
    fast: fastField(schema),
    optional: schema.optional !== undefined,
    fallback: schema.optional?.default,
  }));
}

/**
 * The converted values of one location, or UNSURE. Absent optional fields take their default.
 * When nothing was converted or added and nothing else was sent, the request's own object is the
 * answer (an id in a path): no allocation on the most common reads. `exact`: the source holds only
 * declared keys (path parameters: the mechanism refuses a route whose path has undeclared ones).
 */
function fastLocation(fields: readonly CompiledField[], source: unknown, exact: boolean): Record<string, unknown> | typeof UNSURE {
  if (fields.length === 0) return EMPTY;
  const values = (source ?? EMPTY) as Record<string, unknown>;
  let out: Record<string, unknown> | undefined;
  let present = 0;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    const raw = values[field.name];
    if (raw === undefined) {
      if (!field.optional) return UNSURE;
      if (field.fallback !== undefined) (out ??= copyOf(values, fields, i))[field.name] = field.fallback;
      continue;
    }
    present++;
    const value = field.fast(raw);
    if (value === UNSURE) return UNSURE;
    if (out !== undefined || value !== raw) (out ??= copyOf(values, fields, i))[field.name] = value;
  }
  if (out !== undefined || exact) return out ?? values;
  let sent = 0;
  for (const key in values) if (Object.hasOwn(values, key)) sent++;
  return sent === present ? values : copyOf(values, fields, fields.length);
}

/**
 * The declared fields before index `upTo`, as the fast path accepted them (unchanged). Called only
 * while nothing was converted or defaulted yet, so an absent field before `upTo` has no default.
 */
function copyOf(values: Record<string, unknown>, fields: readonly CompiledField[], upTo: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < upTo; i++) {
    const name = fields[i]!.name;
    if (values[name] !== undefined) out[name] = values[name];
  }
  return out;
}

// ---- the middleware --------------------------------------------------------------------------

function toDetails(error: ValidationError): ErrorDetail[] {
  switch (error.type) {
    case 'field':
      return [{ field: error.path, location: error.location, message: String(error.msg) }];
    case 'unknown_fields':
      return error.fields.map((f) => ({ field: f.path, location: f.location, message: 'is not allowed' }));
    case 'alternative':
      return error.nestedErrors.flatMap(toDetails);
    case 'alternative_grouped':
      return error.nestedErrors.flat().flatMap(toDetails);
  }
}

function withDefaults(values: Record<string, unknown>, fields: readonly CompiledField[]): Record<string, unknown> {
  for (const field of fields) if (values[field.name] === undefined && field.fallback !== undefined) values[field.name] = field.fallback;
  return values;
}

/**
 * The body's fields as sent. express-validator leaves out of `matchedData` every optional field it
 * skipped, and a nullable optional field skips `null`: without `includeOptionals` a PATCH setting
 * a field to null would silently change nothing. With it, absent fields come back as undefined;
 * drop those, so that "absent" and "null" stay different.
 */
function presentFields(values: Record<string, unknown>): Record<string, unknown> {
  for (const key of Object.keys(values)) if (values[key] === undefined) delete values[key];
  return values;
}

export interface CompiledValidator {
  middleware: RequestHandler;
  /** The fast path alone (tests hold it to the chains): the input, or undefined when unsure. */
  fast(req: Pick<Request, 'params' | 'query'>): { params: Record<string, unknown>; query: Record<string, unknown> } | undefined;
  /** The chains alone: the input, or the 422's details. */
  run(req: Request): Promise<{ input: Omit<ValidatedInput, 'auth'> } | { details: ErrorDetail[] }>;
}

export function compileValidator(declaration: RequestDeclaration): CompiledValidator {
  const chains = chainsFor(declaration);
  const paramFields = compileFields(declaration.params);
  const queryFields = compileFields(declaration.query);
  const hasBody = declaration.body !== undefined;

  const fast: CompiledValidator['fast'] = (req) => {
    const params = fastLocation(paramFields, req.params, true);
    if (params === UNSURE) return undefined;
    const query = fastLocation(queryFields, req.query, false);
    if (query === UNSURE) return undefined;
    return { params, query };
  };

  const run: CompiledValidator['run'] = async (req) => {
    for (const chain of chains) await chain.run(req);
    const result = validationResult(req);
    if (!result.isEmpty()) {
      // One entry per field and location, first message wins: clients fix fields, not rules.
      const seen = new Set<string>();
      const details = result
        .array()
        .flatMap(toDetails)
        .filter((d) => {
          const key = `${d.location}:${d.field}`;
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      return { details };
    }
    return {
      input: {
        params: paramFields.length ? withDefaults(matchedData(req, { locations: ['params'] }), paramFields) : EMPTY,
        query: queryFields.length ? withDefaults(matchedData(req, { locations: ['query'] }), queryFields) : EMPTY,
        body: hasBody ? presentFields(matchedData(req, { locations: ['body'], includeOptionals: true })) : EMPTY,
      },
    };
  };

  const slow: RequestHandler = (req, _res, next) => {
    run(req).then((outcome) => {
      if ('details' in outcome) return next(new AppError('validation_failed', { details: outcome.details }));
      req.validated = { ...outcome.input, auth: req.auth };
      next();
    }, next);
  };

  // Bodies always go through the chains (writes; trimming and exact-field checks). Reads whose
  // parameters the fast path recognises do no asynchronous work here at all.
  const middleware: RequestHandler = hasBody
    ? slow
    : (req, res, next) => {
        // Inlined rather than through fast(): one object per request, not two.
        const params = fastLocation(paramFields, req.params, true);
        const query = params === UNSURE ? UNSURE : fastLocation(queryFields, req.query, false);
        if (params === UNSURE || query === UNSURE) return slow(req, res, next);
        req.validated = { params, query, body: EMPTY, auth: req.auth };
        next();
      };
  return { middleware, fast, run };
}
