// The API description: the OpenAPI 3.1 document of everything the app mounts, and an interactive
// viewer of it served from the app's own files. On outside production; in production only with
// API_DOCS=true (a public description of every route helps attackers as much as clients).
import { s } from '../../lib/schema';
import { defineModule } from '../../http/module';
import { route } from '../../http/route';
import { apiDocsViewer } from './viewer';

const DOCUMENT_PATH = '/openapi.json';
const VIEWER_PATH = '/api/docs';

export const docsModule = defineModule({
  name: 'docs',
  base: '',
  stage: 'operations',
  tag: { name: 'API description', description: 'This document, and a viewer of it. Off in production unless API_DOCS=true.' },
  enabled: (config) => config.apiDocs,
  routes: ({ document }) => {
    const viewer = apiDocsViewer({ documentUrl: DOCUMENT_PATH, path: VIEWER_PATH, title: 'Rampart API' });
    let text: string | undefined;
    return [
      route({
        method: 'get',
        path: DOCUMENT_PATH,
        operationId: 'openApiDocument',
        summary: 'This OpenAPI 3.1 document',
        description:
          'Built from the route declarations of the modules this server mounts: every operation, parameter, body, status, header and error code. Feed it to client generators, gateways and contract tests.',
        access: 'public',
        responses: {
          200: { description: 'The document', body: s.raw({ type: 'object', description: 'An OpenAPI 3.1 document.' }), headers: ['Cache-Control'] },
        },
        handler: (_input, _req, res) => {
          // Built once, on first request: every module is mounted by then.
          text ??= JSON.stringify(document());
          res.setHeader('Cache-Control', 'no-cache');
          res.type('application/json').send(text);
        },
      }),
      route({
        method: 'get',
        path: VIEWER_PATH,
        operationId: 'apiDocsViewer',
        summary: 'An interactive viewer of this document',
        description: 'Swagger UI, served from this app (no other host); its own Content-Security-Policy allows exactly what the page needs.',
        access: 'public',
        responses: { 200: { description: 'The viewer page', contentType: 'text/html; charset=utf-8', headers: ['Cache-Control'] } },
        handler: (_input, req, res) => viewer.page(req, res, () => undefined),
      }),
      route({
        method: 'get',
        path: `${VIEWER_PATH}/:asset`,
        operationId: 'apiDocsAsset',
        summary: "One of the viewer's files (scripts, styles, icons)",
        description: 'Only the files the viewer page links to, under content-hashed names; any other name is 404.',
        access: 'public',
        // Any name is looked up in the viewer's allow-list; names it does not hold are 404.
        params: { asset: s.string({ minLength: 1, maxLength: 200, description: 'A content-hashed file name the viewer page links to.' }) },
        responses: { 200: { description: 'The file; cached for a year (its name changes with its content)', contentType: '*/*', headers: ['Cache-Control'] } },
        errors: ['not_found'],
        handler: (_input, req, res) => viewer.asset(req, res, () => undefined),
      }),
    ];
  },
});
