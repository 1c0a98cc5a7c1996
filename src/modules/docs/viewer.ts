// The interactive API viewer (Swagger UI), served from the app's own files: a small page of ours,
// an allow-list of files from swagger-ui-dist read into memory once, and our initializer script.
// Nothing is loaded from another host. The routes are declared by whoever mounts the viewer; this
// module only provides the handlers.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzip } from 'node:zlib';
import type { RequestHandler, Response } from 'express';
import { AppError } from '../../lib/errors';
import { INITIALIZER_SOURCE } from './initializer';

/**
 * The viewer's Content-Security-Policy, replacing the API's `default-src 'none'` on the viewer's
 * responses only. Found in Chromium by starting from `default-src 'none'` plus 'self' for the
 * page's own scripts, styles, images and requests, and adding only what a reported violation proved
 * necessary (test/system/api-docs-viewer.test.ts fails on any violation):
 *   default-src 'none'      anything not listed below is refused (fonts, frames, objects, media,
 *                           workers, manifests: the viewer uses none of them)
 *   script-src 'self'       swagger-ui-bundle.js and the initializer; no inline script, no eval
 *   style-src 'self'        swagger-ui.css and index.css. No 'unsafe-inline', not even
 *                           style-src-attr: Swagger UI (React) sets element styles through the
 *                           CSSOM, which the policy does not govern; no style attribute or
 *                           <style> element was reported while rendering, expanding, trying out
 *                           (GET and POST with a body), authorizing and downloading a response
 *   img-src 'self' data:    'self' for the favicons; data: because swagger-ui.css draws its icons
 *                           as data: SVG URLs (the one violation the strict policy reported)
 *   connect-src 'self'      fetching the document and the "Try it out" requests: this origin only
 *   base-uri, form-action, frame-ancestors 'none'
 *                           not covered by default-src: no <base> rewriting, no form posts
 *                           anywhere, no framing of the page
 */
export const VIEWER_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface ApiDocsViewerOptions {
  /** Where the page's viewer fetches the OpenAPI document, e.g. '/openapi.json' (same origin). */
  documentUrl: string;
  /** Where the page is served, e.g. '/api/docs'; assets are served below it. */
  path: string;
  /** The page's title. */
  title?: string;
}

export interface ApiDocsViewer {
  /** GET `path`: the HTML page. */
  page: RequestHandler;
  /** GET `assetPath`: one allow-listed file by name; anything else is a 404. */
  asset: RequestHandler;
  /** Route template for the assets: `${path}/:asset`. */
  assetPath: string;
  /** The asset names the page links to (content-hashed), for tests and preloading. */
  assetNames: readonly string[];
}

interface Asset {
  body: Buffer;
  type: string;
  /** Whether a gzip variant is worth making (text; PNGs are compressed already). */
  compressible: boolean;
  /** undefined: not made yet; 'pending': being made; null: failed, serve identity. */
  gzipped?: Buffer | 'pending' | null;
}

// The files served from swagger-ui-dist, and nothing else from it. The standalone preset is left
// out on purpose (see the initializer), as are the source maps.
const VENDOR_FILES: readonly { file: string; type: string; compressible: boolean }[] = [
  { file: 'swagger-ui.css', type: 'text/css; charset=utf-8', compressible: true },
  { file: 'index.css', type: 'text/css; charset=utf-8', compressible: true },
  { file: 'swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8', compressible: true },
  { file: 'favicon-32x32.png', type: 'image/png', compressible: false },
  { file: 'favicon-16x16.png', type: 'image/png', compressible: false },
];

// Every asset name carries a hash of its content, so a response never changes under its URL and
// may be cached for a year; an upgrade of swagger-ui-dist changes the names the page links to.
const IMMUTABLE = 'public, max-age=31536000, immutable';
// The page is tiny and names the current assets: always revalidated.
const PAGE_CACHE = 'no-cache';

function hashedName(file: string, body: Buffer): string {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16);
  const ext = path.extname(file);
  return `${file.slice(0, -ext.length)}.${hash}${ext}`;
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function escapeText(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function send(res: Response, status: number, body: Buffer, headers: Record<string, string>): void {
  res.status(status);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.setHeader('Content-Length', String(body.length));
  // HEAD: Node sends the headers and drops the body.
  res.end(body);
}

/** The gzip variant when ready; the first request for an asset starts making it off the event loop. */
function gzipVariant(asset: Asset): Buffer | undefined {
  if (!asset.compressible) return undefined;
  if (asset.gzipped === undefined) {
    asset.gzipped = 'pending';
    gzip(asset.body, (err, out) => {
      asset.gzipped = err ? null : out;
    });
  }
  return Buffer.isBuffer(asset.gzipped) ? asset.gzipped : undefined;
}

export function apiDocsViewer(options: ApiDocsViewerOptions): ApiDocsViewer {
  const base = options.path;
  if (!/^\/[A-Za-z0-9._~/-]*[^/]$/.test(base)) throw new Error(`apiDocsViewer: path must start with / and not end with one: ${base}`);
  if (!options.documentUrl.startsWith('/') || options.documentUrl.startsWith('//')) {
    // connect-src 'self' would refuse anything else in the browser anyway; fail at start-up instead.
    throw new Error(`apiDocsViewer: documentUrl must be a path on this origin: ${options.documentUrl}`);
  }

  // Read once at start-up: the folder is resolved through the package, never from a request.
  const vendorDir = path.dirname(require.resolve('swagger-ui-dist/package.json'));
  const assets = new Map<string, Asset>();
  const nameOf = new Map<string, string>();
  const add = (file: string, body: Buffer, type: string, compressible: boolean) => {
    const name = hashedName(file, body);
    assets.set(name, { body, type, compressible });
    nameOf.set(file, name);
  };
  // eslint-disable-next-line security/detect-non-literal-fs-filename -- fixed file names in the swagger-ui-dist package's directory
  for (const { file, type, compressible } of VENDOR_FILES) add(file, readFileSync(path.join(vendorDir, file)), type, compressible);
  add('viewer-init.js', Buffer.from(INITIALIZER_SOURCE, 'utf8'), 'text/javascript; charset=utf-8', true);
  const url = (file: string) => escapeAttribute(`${base}/${nameOf.get(file)!}`);

  const html = Buffer.from(
    `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeText(options.title ?? 'API documentation')}</title>
<link rel="stylesheet" href="${url('swagger-ui.css')}">
<link rel="stylesheet" href="${url('index.css')}">
<link rel="icon" type="image/png" sizes="32x32" href="${url('favicon-32x32.png')}">
<link rel="icon" type="image/png" sizes="16x16" href="${url('favicon-16x16.png')}">
</head>
<body>
<div id="swagger-ui" data-document-url="${escapeAttribute(options.documentUrl)}"></div>
<script src="${url('swagger-ui-bundle.js')}"></script>
<script src="${url('viewer-init.js')}"></script>
</body>
</html>
`,
    'utf8',
  );

  const page: RequestHandler = (_req, res) => {
    send(res, 200, html, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': PAGE_CACHE,
      'Content-Security-Policy': VIEWER_CSP,
    });
  };

  const asset: RequestHandler = (req, res) => {
    // A Map lookup of the whole name: a name is either one of ours or a 404, so nothing a client
    // sends ever becomes part of a file path.
    const name = req.params.asset;
    const found = typeof name === 'string' ? assets.get(name) : undefined;
    if (!found) throw new AppError('not_found');
    const headers: Record<string, string> = {
      'Content-Type': found.type,
      'Cache-Control': IMMUTABLE,
      'Content-Security-Policy': VIEWER_CSP,
    };
    if (!found.compressible) {
      send(res, 200, found.body, headers);
      return;
    }
    res.vary('Accept-Encoding');
    const gzipped = req.acceptsEncodings('gzip') === 'gzip' ? gzipVariant(found) : undefined;
    if (gzipped) headers['Content-Encoding'] = 'gzip';
    send(res, 200, gzipped ?? found.body, headers);
  };

  return { page, asset, assetPath: `${base}/:asset`, assetNames: [...assets.keys()] };
}
