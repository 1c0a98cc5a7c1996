// A route, declared once. The declaration is what the app mounts (access, rate limit, validation,
// cache, handler, in that order), what the handler's input is typed from, and what the OpenAPI
// document describes (src/http/openapi.ts): none of the three can drift from the others.
import type { Request, RequestHandler, Response } from 'express';
import type { RateLimitRule, RateLimitScope } from '../config';
import type { AccessClaims } from '../lib/access-tokens';
import type { ErrorCode } from '../lib/errors';
import type { AnySchema, Fields, Infer, InferFields, ObjectSchema } from '../lib/schema';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/**
 * public: anyone. bearer: a valid, unrevoked access token (401 otherwise, 503 when the revocation
 * store cannot answer). ops: the operations guard (in production only allowed addresses or the
 * ops token; 403 otherwise).
 */
export type Access = 'public' | 'bearer' | 'ops';

/** Response headers a declaration may name; each is described once in the document. */
export type HeaderName = 'X-Cache' | 'Cache-Control' | 'Pragma';

export interface ResponseDeclaration {
  description: string;
  /** The JSON body; absent for 204 and for bodies described by contentType alone. */
  body?: AnySchema;
  /** The media type when it is not application/json (health+json, Prometheus text, HTML). */
  contentType?: string;
  /** Headers this response always carries (besides X-Request-Id, which every response has). */
  headers?: readonly HeaderName[];
}

/** A configured limiter as a route declares it: the middleware and what the document says of it. */
export interface RateLimit {
  readonly name: string;
  readonly scope: RateLimitScope;
  readonly rule: RateLimitRule;
  /** false: answers 503 when its store is down (auth limits); true: lets the request through. */
  readonly failOpen: boolean;
  /** What a request is counted by, in words ("client IP and email"). */
  readonly keyedBy: string;
  /** Only failed requests count (login: a success never locks anyone out). */
  readonly countsFailuresOnly: boolean;
  readonly middleware: RequestHandler;
}

/** A route's own limits, as a list (a route declares none, one or several). */
export function limitsOf(route: { limit?: RateLimit | readonly RateLimit[] }): readonly RateLimit[] {
  const { limit } = route;
  if (limit === undefined) return [];
  return 'middleware' in limit ? [limit] : limit;
}

type FieldsInput<F> = F extends Fields ? InferFields<F> : Record<string, never>;

/** What a handler receives: validated, converted input and, for bearer routes, the token's claims. */
export interface RouteInput<P, Q, B, A> {
  params: FieldsInput<P>;
  query: FieldsInput<Q>;
  body: B extends ObjectSchema ? Infer<B> : Record<string, never>;
  auth: A extends 'bearer' ? AccessClaims : undefined;
}

/** The response cache for a GET route (see middleware/response-cache.ts). */
interface CacheDeclaration<I> {
  name: string;
  ttlMs: number;
  /** public: one entry for everyone (never stored from a request with credentials); user: per user. */
  audience?: 'public' | 'user';
  /**
   * The namespace the response depends on: a write that invalidates it makes the response stale
   * everywhere. One per response, so that its version and entries hash together (a Redis Cluster);
   * a write touching several things invalidates each of their namespaces.
   */
  namespace(input: I): string;
  /** The response's identity within the route, from validated input only. */
  key(input: I): string;
}

export interface RouteDeclaration<
  P extends Fields | undefined = Fields | undefined,
  Q extends Fields | undefined = Fields | undefined,
  B extends ObjectSchema | undefined = ObjectSchema | undefined,
  A extends Access = Access,
> {
  method: Method;
  /** Relative to the module's base, Express syntax: '/', '/:id', '/me'. */
  path: string;
  /** Unique across the API; client generators name their methods after it. */
  operationId: string;
  summary: string;
  /** What a client needs to know beyond the summary: semantics, caching, side effects. */
  description: string;
  access: A;
  /** Its own rate limits, applied in order, on top of the general one. */
  limit?: RateLimit | readonly RateLimit[];
  params?: P;
  query?: Q;
  body?: B;
  cache?: CacheDeclaration<RouteInput<P, Q, B, A>>;
  /** The answers the handler gives; error answers of the layers in front are added from the above. */
  responses: Readonly<Partial<Record<number, ResponseDeclaration>>>;
  /** Error codes the handler itself may answer with (not_found, forbidden, conflict, ...). */
  errors?: readonly ErrorCode[];
  handler(input: RouteInput<P, Q, B, A>, req: Request, res: Response): unknown;
}

export type AnyRoute = RouteDeclaration;

/** Declares a route; its type parameters come from the declaration itself. */
export function route<
  P extends Fields | undefined = undefined,
  Q extends Fields | undefined = undefined,
  B extends ObjectSchema | undefined = undefined,
  A extends Access = 'public',
>(declaration: RouteDeclaration<P, Q, B, A>): AnyRoute {
  return declaration;
}
