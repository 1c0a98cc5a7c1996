// A client generated from the app's own /openapi.json can call every operation. The document is
// fetched from the app listening on a real socket, turned into types by openapi-typescript, and a
// client program (CLIENT_PROGRAM below) calls every operation through openapi-fetch with those
// types: it must pass `tsc` under the project's strict settings, then run against the same app,
// each answer having the success status the document declares and being parsed by the client.
// The operations the program calls are compared with the document's: a route added later fails
// this file until the program calls it. The app is `ctx.app`, the checked wrapper, so every answer
// is also held to the document by the contract checker (test/helpers/contract.ts).
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type { Middleware } from 'openapi-fetch';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTestContext, type TestContext } from '../helpers/app';

const ROOT = path.resolve(__dirname, '../..');
const run = promisify(execFile);

// The program a client author would write: it imports only the generated types and openapi-fetch,
// and names each call's operation (a typo is a type error, as `OperationId` is the generated
// `keyof operations`). Each call runs in order, so the test can pair it with the request the
// client actually sent. No template literals inside, so this one needs no escaping.
const CLIENT_PROGRAM = `
import createClient, { type Middleware } from 'openapi-fetch';
import type { operations, paths } from './api';

export type OperationId = keyof operations;

export interface Outcome {
  operationId: OperationId;
  status: number;
  data: unknown;
  error: unknown;
}

interface Answer {
  response: Response;
  data?: unknown;
  error?: unknown;
}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error('the answer holds no ' + what);
  return value;
}

const bearer = (token: string) => ({ Authorization: 'Bearer ' + token });

export async function callEveryOperation(baseUrl: string, observe: Middleware): Promise<Outcome[]> {
  const client = createClient<paths>({ baseUrl });
  client.use(observe);
  const outcomes: Outcome[] = [];
  const call = async <R extends Answer>(operationId: OperationId, pending: Promise<R>): Promise<R> => {
    const answer = await pending;
    outcomes.push({ operationId, status: answer.response.status, data: answer.data, error: answer.error });
    return answer;
  };

  // Operations endpoints and the description.
  await call('health', client.GET('/health'));
  await call('liveness', client.GET('/health/live'));
  await call('readiness', client.GET('/health/ready'));
  await call('healthReport', client.GET('/health/detailed'));
  await call('metrics', client.GET('/metrics', { parseAs: 'text' }));
  await call('openApiDocument', client.GET('/openapi.json'));
  const page = await call('apiDocsViewer', client.GET('/api/docs', { parseAs: 'text' }));
  // The page links its files by content-hashed names: take the first one it names.
  const asset = /\\/api\\/docs\\/([^"'\\/?#]+)/.exec(need(page.data, 'viewer page'))?.[1];
  await call('apiDocsAsset', client.GET('/api/docs/{asset}', { params: { path: { asset: need(asset, 'asset link') } }, parseAs: 'arrayBuffer' }));

  // Accounts and sessions: a fresh user for each run.
  const email = 'client-' + Date.now().toString(36) + Math.random().toString(36).slice(2, 8) + '@example.com';
  const password = 'correct horse battery staple';
  const registered = need((await call('register', client.POST('/api/v1/auth/register', { body: { email, password, name: 'Generated Client' } }))).data, 'session');
  const loggedIn = need((await call('login', client.POST('/api/v1/auth/login', { body: { email, password } }))).data, 'session');
  const me = need((await call('getMe', client.GET('/api/v1/users/me', { headers: bearer(registered.accessToken) }))).data, 'user');
  if (me.user.id !== registered.user.id) throw new Error('users/me is someone else');
  await call('updateMe', client.PATCH('/api/v1/users/me', { headers: bearer(loggedIn.accessToken), body: { name: 'Renamed Client' } }));

  // Items: the whole life of one.
  const created = need((await call('createItem', client.POST('/api/v1/items', { headers: bearer(registered.accessToken), body: { name: 'Desk lamp', description: null, price: 49.9, tags: ['home'] } }))).data, 'item');
  const id = created.item.id;
  await call('getItem', client.GET('/api/v1/items/{id}', { params: { path: { id } } }));
  const listed = need((await call('listItems', client.GET('/api/v1/items', { params: { query: { page: 1, limit: 10, sort: '-price', tag: 'home' } } }))).data, 'item page');
  if (!listed.items.some((item) => item.id === id)) throw new Error('the new item is not listed under its tag');
  await call('updateItem', client.PATCH('/api/v1/items/{id}', { params: { path: { id } }, headers: bearer(registered.accessToken), body: { price: 39.5, tags: ['home', 'sale'] } }));
  await call('deleteItem', client.DELETE('/api/v1/items/{id}', { params: { path: { id } }, headers: bearer(registered.accessToken) }));

  // Token rotation, then the calls that end sessions (a password change ends every other one).
  const refreshed = need((await call('refresh', client.POST('/api/v1/auth/refresh', { body: { refreshToken: registered.refreshToken } }))).data, 'tokens');
  need(
    (await call('changePassword', client.POST('/api/v1/auth/password', { headers: bearer(refreshed.accessToken), body: { currentPassword: password, newPassword: password + ' again' } }))).data,
    'session',
  );
  const again = need((await call('login', client.POST('/api/v1/auth/login', { body: { email, password: password + ' again' } }))).data, 'session');
  const sessions = need((await call('listSessions', client.GET('/api/v1/users/me/sessions', { headers: bearer(again.accessToken) }))).data, 'sessions');
  const other = need(
    sessions.sessions.find((s) => !s.current),
    'a session other than the caller',
  );
  await call('endSession', client.DELETE('/api/v1/users/me/sessions/{id}', { params: { path: { id: other.id } }, headers: bearer(again.accessToken) }));
  await call('logout', client.POST('/api/v1/auth/logout', { headers: bearer(again.accessToken), body: {} }));
  const last = need((await call('login', client.POST('/api/v1/auth/login', { body: { email, password: password + ' again' } }))).data, 'session');
  await call('logoutAll', client.POST('/api/v1/auth/logout-all', { headers: bearer(last.accessToken), body: {} }));
  const doomed = need((await call('login', client.POST('/api/v1/auth/login', { body: { email, password: password + ' again' } }))).data, 'session');
  await call('deleteAccount', client.POST('/api/v1/auth/delete-account', { headers: bearer(doomed.accessToken), body: { password: password + ' again' } }));

  // Diagnostics (mounted with ENABLE_DIAGNOSTIC_ROUTES=true).
  await call('diagSlow', client.GET('/api/v1/_diag/slow', { params: { query: { ms: 1 } } }));
  const boom = await call('diagBoom', client.GET('/api/v1/_diag/boom'));
  if (boom.error?.error.code !== 'internal_error') throw new Error('boom did not answer internal_error');
  await call('diagWhoami', client.GET('/api/v1/_diag/whoami'));

  return outcomes;
}
`;

/** What the test sees of the compiled program (its own types are checked by tsc, not here). */
interface ClientProgram {
  callEveryOperation(baseUrl: string, observe: Middleware): Promise<{ operationId: string; status: number; data: unknown; error: unknown }[]>;
}

/** One operation as the served document describes it. */
interface DescribedOperation {
  operationId: string;
  method: string;
  path: string;
  /** The 2xx status the document declares, or undefined when it declares none. */
  success: number | undefined;
}

// An operation whose only purpose is to fail: the document declares no success status for it,
// and its answer is the generic 500 envelope.
const EXPECTED_FAILURES: Readonly<Record<string, number>> = { diagBoom: 500 };

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

function operationsOf(document: { paths: Record<string, Record<string, { operationId: string; responses: Record<string, unknown> }>> }): DescribedOperation[] {
  const found: DescribedOperation[] = [];
  for (const [where, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!METHODS.has(method)) continue; // path-level parameters, summary, servers
      const successes = Object.keys(operation.responses).filter((status) => /^2\d\d$/.test(status));
      // openapi-fetch treats any 2xx as the success answer; two of them would leave the expected one ambiguous here.
      expect(successes.length, `${operation.operationId} declares several success statuses`).toBeLessThanOrEqual(1);
      found.push({
        operationId: operation.operationId,
        method: method.toUpperCase(),
        path: where,
        success: successes[0] === undefined ? undefined : Number(successes[0]),
      });
    }
  }
  return found;
}

let ctx: TestContext;
let server: Server;
let baseUrl: string;
let dir: string;
let documentText: string;
let operations: DescribedOperation[];

beforeAll(async () => {
  ctx = await createTestContext();
  // ctx.app, not a raw app: the checked wrapper records every answer sent over this socket too.
  server = ctx.app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  dir = mkdtempSync(path.join(tmpdir(), 'rampart-generated-client-'));
  // The program resolves openapi-fetch, @types/node and typescript's libs as it would in this project.
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
});

afterAll(async () => {
  if (server) {
    // fetch keeps its connections alive: without this, close would wait for them to time out.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  if (dir) {
    unlinkSync(path.join(dir, 'node_modules')); // the link only, never what it points at
    rmSync(dir, { recursive: true, force: true });
  }
  await ctx?.close();
});

describe('a client generated from /openapi.json', () => {
  it('is generated from the served document without complaint from the generator', async () => {
    const res = await fetch(`${baseUrl}/openapi.json`);
    expect(res.status).toBe(200);
    documentText = await res.text();
    operations = operationsOf(JSON.parse(documentText));
    expect(operations.length).toBeGreaterThan(0);

    // The generator lints the document first: errors throw, warnings go to the console. Either is
    // a defect of the document as far as client authors are concerned.
    const warnings = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const types = astToString(await openapiTS(JSON.parse(documentText)));
      writeFileSync(path.join(dir, 'api.ts'), types); // .ts, not .d.ts: skipLibCheck must not skip it
    } finally {
      warnings.mockRestore();
      errors.mockRestore();
    }
    expect([...warnings.mock.calls, ...errors.mock.calls].map((args) => args.join(' '))).toEqual([]);
  });

  it('type-checks a program calling every operation, under the project strict settings', async () => {
    writeFileSync(path.join(dir, 'client.ts'), CLIENT_PROGRAM);
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: path.join(ROOT, 'tsconfig.json'),
        compilerOptions: { rootDir: '.', noEmit: true },
        files: ['client.ts', 'api.ts'],
        include: [],
      }),
    );
    const result = await run(process.execPath, [
      path.join(ROOT, 'node_modules/typescript/bin/tsc'),
      '-p',
      path.join(dir, 'tsconfig.json'),
      '--pretty',
      'false',
    ]).then(
      () => ({ ok: true, output: '' }),
      (err: { stdout?: string; stderr?: string }) => ({ ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}` }),
    );
    // client.ts is CLIENT_PROGRAM as written (its line numbers count from the opening backquote's line).
    expect(result.output, 'tsc on the generated types (api.ts) and CLIENT_PROGRAM (client.ts)').toBe('');
    expect(result.ok).toBe(true);
  }, 60_000);

  it('calls every operation of the document for real, each answering its declared success status', async () => {
    // The same source that tsc accepted, with its types erased, loaded as CommonJS from the temp dir.
    const js = ts.transpileModule(CLIENT_PROGRAM, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    }).outputText;
    writeFileSync(path.join(dir, 'client.cjs'), js);
    const program = createRequire(path.join(dir, 'client.cjs'))('./client.cjs') as ClientProgram;

    // What the client actually sent, in order: the method and the document path it was built from.
    const sent: { method: string; schemaPath: string }[] = [];
    const observe: Middleware = {
      onRequest: ({ request, schemaPath }) => {
        sent.push({ method: request.method, schemaPath });
      },
    };
    const outcomes = await program.callEveryOperation(baseUrl, observe);

    const byRoute = new Map(operations.map((op) => [`${op.method} ${op.path}`, op]));
    expect(sent.length).toBe(outcomes.length);
    outcomes.forEach((outcome, i) => {
      const request = sent[i]!;
      const operation = byRoute.get(`${request.method} ${request.schemaPath}`);
      // The name the program gives a call must be the operation its request reached.
      expect(operation?.operationId, `call #${i + 1} (${request.method} ${request.schemaPath})`).toBe(outcome.operationId);
      const expected = operation!.success ?? EXPECTED_FAILURES[operation!.operationId];
      expect(expected, `${outcome.operationId} declares no success status and is not an expected failure`).toBeDefined();
      expect(outcome.status, `${outcome.operationId}: ${JSON.stringify(outcome.error)}`).toBe(expected);
      if (operation!.success === undefined) {
        // openapi-fetch parsed the failure into `error`: the envelope, as an object.
        expect(outcome.error, outcome.operationId).toEqual(expect.objectContaining({ error: expect.objectContaining({ code: 'internal_error' }) }));
      } else {
        expect(outcome.error, outcome.operationId).toBeUndefined();
        if (expected !== 204) expect(outcome.data, `${outcome.operationId} answered nothing the client could parse`).toBeDefined();
      }
    });

    // Complete: every operation the document holds (read now, from the app) was called.
    const called = new Set(outcomes.map((outcome) => outcome.operationId));
    const uncalled = operations.filter((op) => !called.has(op.operationId)).map((op) => `${op.operationId} (${op.method} ${op.path})`);
    expect(uncalled, 'operations the client program never calls: add a call to each in CLIENT_PROGRAM').toEqual([]);
  });
});
