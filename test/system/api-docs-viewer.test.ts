// The API viewer in a real browser: every operation of the served document is rendered, "Try it
// out" reaches the app, and the page runs under its own Content-Security-Policy without a single
// violation, script error or failed load. The viewer's policy replaces the API's strict one on the
// viewer's responses only.
//
// The app is the real one: everything about the document is read from what its /openapi.json
// returns, so the assertions hold for whatever modules it mounts.
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Express } from 'express';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { computeSecurityHeaders } from '../../src/middleware/security-headers';
import { apiDocsViewer, VIEWER_CSP } from '../../src/modules/docs/viewer';
import { CHROMIUM, NO_CHROMIUM_REASON, TestBrowser, type WatchedPage } from '../helpers/browser';
import { createTestContext, type TestContext } from '../helpers/app';

const DOCUMENT_URL = '/openapi.json';
const VIEWER_PATH = '/api/docs';
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/** The real app (all its modules, the API description included) over the configured services. */
let ctx: TestContext | undefined;
async function realApp(): Promise<Express> {
  ctx ??= await createTestContext();
  return ctx.app;
}
afterAll(async () => ctx?.close());

type OpenApiDocument = {
  servers?: { url?: string }[];
  paths?: Record<string, Record<string, unknown>>;
  webhooks?: Record<string, Record<string, unknown>>;
  security?: unknown[];
};
type Operation = { parameters?: { required?: boolean; in?: string }[]; security?: unknown[]; requestBody?: unknown };

interface DocumentOperation {
  method: string;
  path: string;
  operation: Operation;
  pathParameters: Operation['parameters'];
}

function operationsOf(doc: OpenApiDocument): DocumentOperation[] {
  const all: DocumentOperation[] = [];
  for (const section of [doc.paths ?? {}, doc.webhooks ?? {}]) {
    for (const [path, item] of Object.entries(section)) {
      for (const method of METHODS) {
        const operation = item[method] as Operation | undefined;
        if (operation) all.push({ method, path, operation, pathParameters: item.parameters as Operation['parameters'] });
      }
    }
  }
  return all;
}

/** An operation the browser can try without input or credentials: GET, nothing required. */
function tryableOperation(doc: OpenApiDocument, ops: DocumentOperation[]): DocumentOperation | undefined {
  const open = (security: unknown[] | undefined) =>
    security === undefined || security.length === 0 || security.some((s) => s !== null && typeof s === 'object' && Object.keys(s).length === 0);
  return ops.find(
    (op) =>
      op.method === 'get' &&
      doc.paths?.[op.path]?.[op.method] === op.operation &&
      ![...(op.pathParameters ?? []), ...(op.operation.parameters ?? [])].some((p) => p.required || p.in === 'path') &&
      open(op.operation.security ?? doc.security),
  );
}

/** The path the document's first server puts before every operation path ('' for none or '/'). */
function serverBase(doc: OpenApiDocument): string {
  const server = doc.servers?.[0]?.url;
  if (!server) return '';
  return new URL(server, 'http://server.invalid').pathname.replace(/\/$/, '');
}

/** Type and top-level keys: what two answers of the same operation have in common. */
function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return 'array';
  if (value !== null && typeof value === 'object') return Object.keys(value).sort();
  return typeof value;
}

const API_CSP = new Map(computeSecurityHeaders()).get('Content-Security-Policy');

describe('api docs viewer: headers and assets', () => {
  let app: Express;
  beforeAll(async () => {
    app = await realApp();
  });
  const viewer = apiDocsViewer({ documentUrl: DOCUMENT_URL, path: VIEWER_PATH });

  it('the API keeps its strict policy, and it is not the viewer policy', async () => {
    expect(API_CSP).toMatch(/^default-src 'none'/);
    expect(API_CSP).not.toBe(VIEWER_CSP);
    const res = await request(app).get(DOCUMENT_URL).expect(200);
    expect(res.headers['content-security-policy']).toBe(API_CSP);
  });

  it('the page carries the viewer policy, names the document and links only its own assets', async () => {
    const res = await request(app).get(VIEWER_PATH).expect(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe(VIEWER_CSP);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.text).toContain(`data-document-url="${DOCUMENT_URL}"`);
    // No inline script and no other host: every script and link points below the viewer path.
    expect(res.text).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    const urls = [...res.text.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const url of urls) expect(url.startsWith(`${VIEWER_PATH}/`)).toBe(true);
    expect(res.text).not.toMatch(/https?:\/\//);
  });

  it('every asset the page links carries the viewer policy, its type and a long cache lifetime', async () => {
    const page = await request(app).get(VIEWER_PATH).expect(200);
    const linked = [...page.text.matchAll(/\s(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(linked.sort()).toEqual(viewer.assetNames.map((name) => `${VIEWER_PATH}/${name}`).sort());
    for (const url of linked) {
      const res = await request(app).get(url).buffer(true).expect(200);
      expect(res.headers['content-security-policy'], url).toBe(VIEWER_CSP);
      expect(res.headers['cache-control'], url).toBe('public, max-age=31536000, immutable');
      const type = url.endsWith('.js') ? 'text/javascript; charset=utf-8' : url.endsWith('.css') ? 'text/css; charset=utf-8' : 'image/png';
      expect(res.headers['content-type'], url).toBe(type);
    }
  });

  it('text assets are served gzipped to clients that accept it, once ready', async () => {
    const bundle = viewer.assetNames.find((n) => n.startsWith('swagger-ui-bundle.'))!;
    const url = `${VIEWER_PATH}/${bundle}`;
    const plain = await request(app).get(url).set('Accept-Encoding', 'identity').expect(200);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toContain('Accept-Encoding');
    // The first request starts the compression off the event loop; later ones get its result.
    await expect.poll(async () => (await request(app).get(url).set('Accept-Encoding', 'gzip')).headers['content-encoding'], { timeout: 5_000 }).toBe('gzip');
    const gzipped = await request(app).get(url).set('Accept-Encoding', 'gzip').expect(200);
    expect(gzipped.text).toBe(plain.text);
  });

  it.each([
    'nope.js',
    'package.json',
    'swagger-ui.css.map',
    'oauth2-redirect.html',
    '__proto__',
    'constructor',
    '..%2fpackage.json',
    '..%2F..%2Fpackage.json',
    '%2e%2e%2fpackage.json',
    '..%5cpackage.json',
    'swagger-ui-dist%2fpackage.json',
    '%2fetc%2fpasswd',
    '..%252fpackage.json',
    'x/..%2f..%2fpackage.json',
  ])('%s answers 404 with the JSON envelope and the API policy', async (name) => {
    const res = await request(app).get(`${VIEWER_PATH}/${name}`).expect(404);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body.error.code).toBe('not_found');
    expect(res.headers['content-security-policy']).toBe(API_CSP);
  });

  it('HEAD of an asset sends its headers without a body', async () => {
    const res = await request(app).head(`${VIEWER_PATH}/${viewer.assetNames[0]!}`).expect(200);
    expect(Number(res.headers['content-length'])).toBeGreaterThan(0);
    expect(res.text ?? '').toBe('');
  });
});

describe.skipIf(!CHROMIUM)(`api docs viewer in Chromium${CHROMIUM ? '' : ` [${NO_CHROMIUM_REASON}]`}`, () => {
  let browser: TestBrowser;
  let server: Server;
  let origin: string;
  let doc: OpenApiDocument;
  let watched: WatchedPage | undefined;

  beforeAll(async () => {
    const app = await realApp();
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    doc = (await request(origin).get(DOCUMENT_URL).expect(200)).body as OpenApiDocument;
    browser = await TestBrowser.launch();
  });

  afterEach(async () => {
    await watched?.close();
    watched = undefined;
  });

  afterAll(async () => {
    await browser?.close();
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  async function openViewer(): Promise<WatchedPage> {
    watched = await browser.open();
    await watched.page.goto(`${origin}${VIEWER_PATH}`, { waitUntil: 'load' });
    // Swagger UI renders after fetching the document; wait for its operations.
    await watched.page.locator('.opblock').first().waitFor({ state: 'visible' });
    return watched;
  }

  function expectNoProblems(w: WatchedPage): void {
    const { problems } = w;
    expect(problems.cspViolations, 'CSP violations').toEqual([]);
    expect(problems.pageErrors, 'page errors').toEqual([]);
    expect(problems.failedRequests, 'failed requests').toEqual([]);
    expect(problems.errorResponses, 'error responses').toEqual([]);
    expect(problems.consoleErrors, 'console errors').toEqual([]);
    expect(problems.consoleWarnings, 'console warnings').toEqual([]);
    // Nothing was requested from any other host (the policy would refuse it; nothing even tries).
    expect(
      problems.requests.filter((url) => new URL(url).origin !== origin),
      'requests to other hosts',
    ).toEqual([]);
  }

  it('renders every operation of the document, with no violation, error or failed load', async () => {
    const w = await openViewer();
    const expected = operationsOf(doc).map((op) => `${op.method.toUpperCase()} ${op.path}`);
    expect(expected.length).toBeGreaterThan(0);
    // Wait until the last operation has been rendered, then compare the whole list.
    await expect.poll(async () => w.page.locator('.opblock').count()).toBeGreaterThanOrEqual(expected.length);
    const rendered = await w.page
      .locator('.opblock')
      .evaluateAll((blocks) =>
        blocks.map(
          (b) => `${b.querySelector('.opblock-summary-method')?.textContent?.trim()} ${b.querySelector('.opblock-summary-path')?.getAttribute('data-path')}`,
        ),
      );
    // An operation with several tags is shown once per tag: compare the distinct operations.
    expect([...new Set(rendered)].sort()).toEqual([...new Set(expected)].sort());
    expect(rendered.length).toBeGreaterThanOrEqual(expected.length);
    expect(w.problems.requests).toContain(`${origin}${DOCUMENT_URL}`);
    expectNoProblems(w);
  });

  it('"Try it out" then "Execute" reaches the app and shows its answer', async () => {
    const op = tryableOperation(doc, operationsOf(doc));
    expect(op, 'the document has a GET operation without required input').toBeDefined();
    const url = `${serverBase(doc)}${op!.path}`;
    const direct = await request(origin).get(url).expect(200);
    const w = await openViewer();
    const block = w.page
      .locator(`.opblock-${op!.method}`)
      .filter({ has: w.page.locator(`.opblock-summary-path[data-path="${op!.path}"]`) })
      .first();
    await block.locator('.opblock-summary').first().click();
    await block.getByRole('button', { name: 'Try it out' }).click();
    const answer = w.page.waitForResponse((res) => res.url() === `${origin}${url}` && res.request().method() === op!.method.toUpperCase());
    await block.getByRole('button', { name: 'Execute' }).click();
    expect((await answer).status()).toBe(200);
    const live = block.locator('.live-responses-table');
    await expect.poll(async () => (await live.locator('tr.response .response-col_status').first().textContent())?.trim()).toBe('200');
    // The body as the app sent it, pretty-printed by the viewer: every top-level key appears.
    // The body as the viewer shows it is the app's JSON: same shape as a direct request's (values
    // may differ between two requests, e.g. a timestamp).
    const shown = JSON.parse((await live.locator('tr.response .response-col_description .highlight-code pre').first().textContent()) ?? '') as unknown;
    expect(shapeOf(shown)).toEqual(shapeOf(direct.body));
    expectNoProblems(w);
  });
});
