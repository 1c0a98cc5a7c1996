// The OpenAPI 3.1 document, built from the mounted route declarations: paths, parameters, bodies,
// every status an operation can answer (its own, and those of the layers in front of it: body
// parsing, the general limit, authentication, validation), with their schemas, headers and error
// codes. Nothing here is written per route: a route that is mounted is described.
import type { Config } from '../config';
import { ERROR_CATALOGUE, type ErrorCode } from '../lib/errors';
import { toJsonSchema, type AnySchema, type JsonSchema, type SchemaRegistry } from '../lib/schema';
import type { MountedRoute } from './module';
import { limitsOf, type HeaderName, type RateLimit } from './route';

type Doc = Record<string, unknown>;

const ERROR_MESSAGE_MAX = 200;

/** The envelope every error leaves in (middleware/error-handler.ts). */
const ERROR_SCHEMA: JsonSchema = {
  type: 'object',
  description: 'Every error, from any layer, has this shape; it never holds a stack trace, a path, SQL or a submitted value.',
  required: ['error'],
  additionalProperties: false,
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'requestId'],
      additionalProperties: false,
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_CATALOGUE), description: 'Stable, machine-readable; see the error catalogue.' },
        message: { type: 'string', minLength: 1, maxLength: ERROR_MESSAGE_MAX, description: 'For humans; may change, never empty.' },
        requestId: { type: 'string', maxLength: 128, description: 'The X-Request-Id of the request.' },
        details: {
          type: 'array',
          maxItems: 100,
          description: 'validation_failed only: one entry per failing field.',
          items: {
            type: 'object',
            required: ['field', 'location', 'message'],
            additionalProperties: false,
            properties: {
              field: { type: 'string', maxLength: 200, examples: ['email'] },
              location: { type: 'string', enum: ['body', 'query', 'params'] },
              message: { type: 'string', minLength: 1, maxLength: ERROR_MESSAGE_MAX, examples: ['must be an email'] },
            },
          },
        },
      },
    },
  },
  examples: [
    {
      error: {
        code: 'validation_failed',
        message: 'Request validation failed',
        requestId: '2b0c8f6e-4d3a-4c1e-9a57-0d3f1c2b7e10',
        details: [{ field: 'email', location: 'body', message: 'must be an email' }],
      },
    },
  ],
};

const HEADERS: Record<string, Doc> = {
  'X-Request-Id': {
    description:
      'The request id: the incoming X-Request-Id when well-formed (a UUID or 1-128 of A-Z a-z 0-9 . _ -), else a generated UUID. Quote it when reporting a problem.',
    schema: { type: 'string', maxLength: 128 },
  },
  RateLimit: {
    description:
      'Remaining quota of the limits that counted this request (IETF RateLimit header fields, draft 8): `"<name>";r=<remaining>;t=<seconds to reset>`.',
    schema: { type: 'string', maxLength: 512 },
  },
  'RateLimit-Policy': {
    description: 'The limits that apply (IETF RateLimit header fields, draft 8): `"<name>";q=<quota>;w=<window seconds>`.',
    schema: { type: 'string', maxLength: 512 },
  },
  'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', format: 'int32', minimum: 0, maximum: 604_800 } },
  'X-Cache': {
    description: 'HIT: served from the response cache; MISS: computed and stored; BYPASS: the cache store is unavailable, computed without it.',
    schema: { type: 'string', enum: ['HIT', 'MISS', 'BYPASS'] },
  },
  'WWW-Authenticate': { description: '`Bearer`, or `Bearer error="invalid_token"` when a token was presented.', schema: { type: 'string', maxLength: 100 } },
  'Access-Control-Allow-Origin': {
    description: "The request's Origin, echoed when it is one of CORS_ORIGINS (exact match; with Vary: Origin); absent otherwise.",
    schema: { type: 'string', maxLength: 2048 },
  },
  'Cache-Control': {
    description: 'Never stored by shared caches where it matters: `no-store` or `private, no-store`.',
    schema: { type: 'string', maxLength: 100 },
  },
  Pragma: { description: '`no-cache`, for HTTP/1.0 caches.', schema: { type: 'string', maxLength: 20 } },
};

const headerRef = (name: string, required = false): Doc =>
  required ? { $ref: `#/components/headers/${name}`, required: true } : { $ref: `#/components/headers/${name}` };

/** Headers every response under /api/v1 may carry (the API middleware's). */
const API_HEADERS: Doc = {
  RateLimit: headerRef('RateLimit'),
  'RateLimit-Policy': headerRef('RateLimit-Policy'),
  'Access-Control-Allow-Origin': headerRef('Access-Control-Allow-Origin'),
};

/** Reason phrases used as the description of generated error responses. */
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthenticated',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Validation failed',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Service unavailable',
};

const AUTH_CODES: readonly ErrorCode[] = ['unauthorized', 'invalid_token', 'token_revoked'];

/**
 * What the API middleware may answer for any request under /api/v1, before routing: malformed,
 * not JSON, too large, over the general limit, refused by admission control while the process is
 * overloaded. Every API operation lists them; the response check in the tests accepts them for
 * requests that match no operation too.
 */
export const API_MIDDLEWARE_CODES: readonly ErrorCode[] = [
  'bad_request',
  'invalid_json',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'service_unavailable',
];

/** Which error codes a mounted route can answer with: its own and those of every layer in front. */
function errorCodesOf({ module, route }: MountedRoute): Set<ErrorCode> {
  const codes = new Set<ErrorCode>(['internal_error']);
  if (module.stage !== 'operations') {
    // The API middleware: body parsing and checks, malformed requests, the general limit.
    // service_unavailable among them: admission control, and a database that is down or saturated.
    for (const code of API_MIDDLEWARE_CODES) codes.add(code);
  } else if (route.path.includes(':')) {
    // Express answers 400 for a path parameter that is not valid percent-encoding (`%zz`).
    codes.add('bad_request');
  }
  for (const limit of limitsOf(route)) {
    codes.add('rate_limited');
    if (!limit.failOpen) codes.add('service_unavailable');
  }
  if (route.access === 'bearer') for (const code of [...AUTH_CODES, 'service_unavailable'] as const) codes.add(code);
  if (route.access === 'ops') codes.add('forbidden');
  if (route.params || route.query || route.body) codes.add('validation_failed');
  for (const code of route.errors ?? []) codes.add(code);
  return codes;
}

function describeLimit(limit: RateLimit): string {
  const minutes = limit.rule.windowMs / 60_000;
  const window = Number.isInteger(minutes) ? `${minutes} min` : `${limit.rule.windowMs / 1000} s`;
  const counted = limit.countsFailuresOnly ? 'failed attempts' : 'requests';
  const outage = limit.failOpen ? 'lets requests through' : 'refuses with 503';
  return `Rate limit \`${limit.name}\` (scope ${limit.scope}): ${limit.rule.max} ${counted} per ${window}, counted by ${limit.keyedBy}; when its store is unavailable it ${outage}.`;
}

function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function parameters(mounted: MountedRoute, registry: SchemaRegistry): Doc[] {
  const list: Doc[] = [];
  for (const [location, in_] of [
    ['params', 'path'],
    ['query', 'query'],
  ] as const) {
    for (const [name, schema] of Object.entries(mounted.route[location] ?? {})) {
      const json = toJsonSchema(schema, registry);
      const parameter: Doc = { name, in: in_, required: in_ === 'path' || !schema.optional, schema: json };
      if (schema.description !== undefined) parameter.description = schema.description;
      list.push(parameter);
    }
  }
  list.push({ $ref: '#/components/parameters/RequestId' });
  return list;
}

function jsonContent(schema: JsonSchema, contentType = 'application/json'): Doc {
  return { [contentType]: { schema } };
}

function errorResponses(mounted: MountedRoute): Record<string, Doc> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodesOf(mounted)) {
    const status = ERROR_CATALOGUE[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const api = mounted.module.stage !== 'operations';
  const responses: Record<string, Doc> = {};
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const headers: Doc = { 'X-Request-Id': headerRef('X-Request-Id', true) };
    if (api) Object.assign(headers, API_HEADERS);
    if (status === 429 || status === 503) headers['Retry-After'] = headerRef('Retry-After', true);
    if (status === 429 || status >= 500) headers['Cache-Control'] = headerRef('Cache-Control', true);
    if (status === 401)
      headers['WWW-Authenticate'] = headerRef(
        'WWW-Authenticate',
        codes.every((c) => AUTH_CODES.includes(c)),
      );
    const list = codes.map((c) => `\`${c}\`: ${ERROR_CATALOGUE[c].message}`).join('; ');
    responses[String(status)] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}. Codes: ${list}.`,
      headers,
      content: jsonContent({
        allOf: [{ $ref: '#/components/schemas/Error' }, { properties: { error: { properties: { code: { type: 'string', enum: codes } } } } }],
      }),
    };
  }
  return responses;
}

function successResponses(mounted: MountedRoute, registry: SchemaRegistry): Record<string, Doc> {
  const api = mounted.module.stage !== 'operations';
  const responses: Record<string, Doc> = {};
  for (const [status, declared] of Object.entries(mounted.route.responses)) {
    if (!declared) continue;
    const headers: Doc = { 'X-Request-Id': headerRef('X-Request-Id', true) };
    if (api) Object.assign(headers, API_HEADERS);
    const named = new Set<HeaderName>(declared.headers ?? []);
    if (mounted.route.cache && Number(status) === 200) named.add('X-Cache');
    for (const name of named) headers[name] = headerRef(name, true);
    const response: Doc = { description: declared.description, headers };
    if (declared.body) response.content = jsonContent(toJsonSchema(declared.body, registry), declared.contentType);
    else if (declared.contentType) {
      // Text as a string; any type at all (*/*, e.g. images) as bytes.
      const bytes = declared.contentType === '*/*' ? { contentMediaType: 'application/octet-stream' } : {};
      response.content = { [declared.contentType]: { schema: { type: 'string', maxLength: 10_000_000, ...bytes } } };
    }
    responses[status] = response;
  }
  return responses;
}

function requestBody(body: AnySchema, registry: SchemaRegistry): Doc {
  const required = body.kind === 'object' && Object.values(body.fields).some((f) => !f.optional);
  return { required, content: jsonContent(toJsonSchema(body, registry)) };
}

function security(access: MountedRoute['route']['access']): Doc[] {
  if (access === 'bearer') return [{ bearerAuth: [] }];
  // In production: the ops token, or an allowed address without any credential.
  if (access === 'ops') return [{ opsToken: [] }, {}];
  return [];
}

function operation(mounted: MountedRoute, registry: SchemaRegistry): Doc {
  const { route, module } = mounted;
  const notes = [route.description, ...limitsOf(route).map(describeLimit)];
  const op: Doc = {
    operationId: route.operationId,
    summary: route.summary,
    tags: [module.tag.name],
    security: security(route.access),
    parameters: parameters(mounted, registry),
  };
  if (notes.length > 0) op.description = notes.join('\n\n');
  if (route.body) op.requestBody = requestBody(route.body, registry);
  op.responses = { ...successResponses(mounted, registry), ...errorResponses(mounted) };
  return op;
}

export interface DocumentOptions {
  config: Config;
  version: string;
}

export function buildDocument(mounted: readonly MountedRoute[], { config, version }: DocumentOptions): Doc {
  const registry: SchemaRegistry = new Map();
  const paths: Record<string, Doc> = {};
  const tags = new Map<string, string>();
  const operationIds = new Set<string>();
  for (const m of mounted) {
    if (operationIds.has(m.route.operationId)) throw new Error(`operationId ${m.route.operationId} is declared twice`);
    operationIds.add(m.route.operationId);
    tags.set(m.module.tag.name, m.module.tag.description);
    const path = openApiPath(m.path);
    paths[path] = { ...paths[path], [m.route.method]: operation(m, registry) };
  }
  const api = config.rateLimits.API;
  return {
    openapi: '3.1.0',
    info: {
      title: 'Rampart API',
      version,
      summary: 'A production-grade Express 5 API server template: the example users and items API and its operations endpoints.',
      description: [
        'JSON in, JSON out. Every response carries `X-Request-Id`; every error has one envelope (`Error`) with a stable `code`.',
        `Everything under \`/api/v1\` shares the general rate limit (\`api\`: ${api.max} requests per ${api.windowMs / 60_000} min per client IP; it lets requests through when its store is unavailable); some operations add their own.`,
        'A known path answers an unsupported method with 405 `method_not_allowed` and an `Allow` header listing those it supports; an unknown path answers 404 `not_found`. Any request under `/api/v1`, whatever its path, may be refused before routing with 400, 413, 415 or 429 (malformed, too large, not JSON, over the general limit). CORS preflight (`OPTIONS`) answers 204 for allowed origins.',
        'No string, in a body, a path or a query, may contain a NUL character or an unpaired surrogate (text that cannot be stored as sent): such a value is refused with 422 `validation_failed` naming the field.',
      ].join('\n\n'),
      license: { name: 'MIT', identifier: 'MIT' },
    },
    // Relative: the document describes whichever deployment (local, development, staging or
    // production) serves it. Internet-facing: clients reach it through the proxy.
    servers: [
      { url: '/', description: 'The server that serves this document, in any environment: local, development, staging or production', 'x-internal': false },
    ],
    tags: [...tags].map(([name, description]) => ({ name, description })),
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA, ...Object.fromEntries([...registry].sort(([a], [b]) => a.localeCompare(b))) },
      headers: HEADERS,
      parameters: {
        RequestId: {
          name: 'X-Request-Id',
          in: 'header',
          required: false,
          description: 'Echoed when it is a UUID or 1-128 of A-Z a-z 0-9 . _ -; otherwise replaced by a generated UUID.',
          schema: { type: 'string', maxLength: 128, pattern: '^[A-Za-z0-9._-]{1,128}$' },
        },
      },
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'An access token from register, login, refresh or password change, in the Authorization header only (never a query string or cookie). Handled as RFC8725 (JSON Web Token best current practices) recommends: HS256 pinned (no `none`, no algorithm switching), `typ` at+jwt, `exp`, `iss` and `aud` required and checked, `kid` selecting among configured keys only.',
        },
        opsToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'OPS_TOKEN, for the operations endpoints in production when the caller is not among OPS_ALLOWED_ADDRESSES.',
        },
      },
    },
  };
}
