// Every response held to the OpenAPI document. An app wrapped by `checkedApp` records each response
// it sends (status, headers, body, inflated when gzipped) and checks it with openapi-backend, a
// standard OpenAPI 3.1 validator: the status must be declared for the operation, the body must
// match that status's schema and media type, and the headers marked required must be there. A
// response for no operation must be the 404 or 405 error envelope. Test contexts check on close
// (see helpers/app.ts), so any test file that talks to the app fails when a response leaves the
// document.
import { gunzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import type { Express } from 'express';
import OpenAPIBackend, { SetMatchType, type Document, type Operation } from 'openapi-backend';
import { API_MIDDLEWARE_CODES } from '../../src/http/openapi';
import { ERROR_CATALOGUE } from '../../src/lib/errors';

/** Statuses a request that matches no operation may get: 404, 405, and the API middleware's. */
const UNROUTED_STATUSES = new Set([404, 405, ...API_MIDDLEWARE_CODES.map((code) => ERROR_CATALOGUE[code].status)]);

interface Exchange {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: Buffer;
}

export interface ContractChecker {
  /** Problems found so far, one line each (method, URL, status, what is wrong). */
  readonly violations: string[];
  /** How many responses were checked. */
  readonly checked: number;
  check(exchange: Exchange): void;
}

const JSON_TYPES = /^application\/(?:[\w.+-]+\+)?json\b/;

function mediaType(headers: Exchange['headers']): string {
  const value = headers['content-type'];
  return typeof value === 'string' ? value.split(';')[0]!.trim().toLowerCase() : '';
}

function decode(exchange: Exchange): Buffer {
  return exchange.headers['content-encoding'] === 'gzip' && exchange.body.length > 0 ? gunzipSync(exchange.body) : exchange.body;
}

export async function contractChecker(document: Record<string, unknown>): Promise<ContractChecker> {
  const api = new OpenAPIBackend({
    definition: structuredClone(document) as unknown as Document,
    // The document itself is validated against the OpenAPI 3.1 schema elsewhere (test/unit/openapi.test.ts):
    // this library checks definitions against its 3.0 schema.
    strict: false,
    // quick: no definition check (see above), which would otherwise stop it from loading at all.
    quick: true,
    validate: true,
    customizeAjv: (instance) => {
      addFormats(instance);
      return instance;
    },
    // Prices are multiples of 0.01: compare with a tolerance, as a float must be (19.99 / 0.01 is
    // not an integer in binary floating point).
    ajvOpts: { multipleOfPrecision: 6 },
  });
  await api.init();
  // For answers outside every operation (404, 405): the envelope itself.
  const components = (document.components as { schemas: Record<string, unknown> }).schemas;
  const envelopeAjv = new Ajv({ strict: false });
  addFormats(envelopeAjv);
  const envelope = envelopeAjv.compile({ ...(components.Error as object), components: { schemas: components } });

  const violations: string[] = [];
  let checked = 0;

  // From the document as written: a header object says `required: true` beside its $ref.
  type Described = { operationId: string; responses: Record<string, { headers?: Record<string, { required?: boolean }> }> };
  const byOperation = new Map<string, Described>();
  for (const item of Object.values(document.paths as Record<string, Record<string, Described>>)) {
    for (const op of Object.values(item)) byOperation.set(op.operationId, op);
  }
  const requiredHeaders = (operationId: string, status: number): string[] =>
    Object.entries(byOperation.get(operationId)?.responses[String(status)]?.headers ?? {})
      .filter(([, header]) => header.required)
      .map(([name]) => name);

  const check = (exchange: Exchange): void => {
    checked++;
    const where = `${exchange.method} ${exchange.url} -> ${exchange.status}`;
    const fail = (what: string): void => {
      violations.push(`${where}: ${what}`);
    };
    // CORS preflight is the CORS protocol, not an operation (described in the document's info).
    if (exchange.method === 'OPTIONS') return;
    // The path exactly as the app received it: WHATWG URL parsing would resolve `..` and `%2e%2e`
    // segments, which Express does not, and match another operation than the one that answered.
    const queryAt = exchange.url.indexOf('?');
    const pathname = queryAt === -1 ? exchange.url : exchange.url.slice(0, queryAt);
    const head = exchange.method === 'HEAD';
    const method = head ? 'get' : exchange.method.toLowerCase();
    const query = Object.fromEntries(new URLSearchParams(queryAt === -1 ? '' : exchange.url.slice(queryAt + 1)));
    let operation: Operation | undefined;
    try {
      operation = api.matchOperation({ method, path: pathname, query, headers: {} });
    } catch {
      operation = undefined;
    }
    const body = decode(exchange);
    const type = mediaType(exchange.headers);

    if (!operation) {
      // Unknown paths and methods, and what the API middleware refuses before any routing (any
      // path under /api/v1): the envelope, with one of these statuses.
      if (!UNROUTED_STATUSES.has(exchange.status)) return fail('no operation in the document answers this request');
      if (exchange.status === 405 && !exchange.headers.allow) fail('405 without an Allow header');
      if (!head && !envelope(JSON.parse(body.toString('utf8')))) fail(`not the error envelope: ${JSON.stringify(envelope.errors)}`);
      return;
    }
    const declared = (operation.responses as Record<string, { content?: Record<string, unknown> }> | undefined)?.[String(exchange.status)];
    if (!declared) return fail(`status ${exchange.status} is not declared for ${operation.operationId}`);

    // Values of the headers present are checked by the library; which must be present, by the
    // document's `required` (the library treats every described header as required or none).
    const headers = api.validateResponseHeaders(exchange.headers, operation, { statusCode: exchange.status, setMatchType: SetMatchType.Any });
    if (!headers.valid) fail(`headers: ${JSON.stringify(headers.errors)}`);
    for (const name of requiredHeaders(operation.operationId!, exchange.status)) {
      if (exchange.headers[name.toLowerCase()] === undefined) fail(`required header ${name} is missing`);
    }

    const content = declared.content;
    if (!content) {
      if (body.length > 0 && !head) fail(`a body where ${operation.operationId} declares none`);
      return;
    }
    const declaredTypes = Object.keys(content).map((t) => t.split(';')[0]!.trim().toLowerCase());
    if (!declaredTypes.includes(type) && !declaredTypes.includes('*/*'))
      return fail(`media type ${type || '(none)'} is not declared (${Object.keys(content).join(', ')})`);
    if (head || !JSON_TYPES.test(type)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      return fail('declared JSON, sent something else');
    }
    const result = api.validateResponse(parsed, operation, exchange.status);
    if (!result.valid) fail(`body: ${JSON.stringify(result.errors)} in ${body.toString('utf8').slice(0, 300)}`);
  };

  return {
    violations,
    get checked() {
      return checked;
    },
    check,
  };
}

/** Records what goes out on a response: the bytes written, whatever writes them. */
function record(res: ServerResponse, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = [];
  const keep = (chunk: unknown, encoding?: unknown) => {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') return;
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8'));
  };
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((...args: unknown[]) => {
    keep(args[0], args[1]);
    return write(...args);
  }) as typeof res.write;
  res.end = ((...args: unknown[]) => {
    keep(args[0], args[1]);
    return end(...args);
  }) as typeof res.end;
  res.once('finish', () => done(Buffer.concat(chunks)));
}

/**
 * The app, with every response it sends handed to `checker`. The wrapper has the app as its
 * prototype, so it is used exactly like the app (supertest, listen, settings).
 */
export function checkedApp(app: Express, checker: ContractChecker): Express {
  const wrapped = (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    record(res, (body) => {
      // A header sent on several lines means the same as one line with the values comma-joined.
      const headers = Object.fromEntries(Object.entries(res.getHeaders()).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]));
      checker.check({ method, url, status: res.statusCode, headers, body });
    });
    return (app as unknown as (req: IncomingMessage, res: ServerResponse) => void)(req, res);
  };
  Object.setPrototypeOf(wrapped, app);
  return wrapped as unknown as Express;
}
