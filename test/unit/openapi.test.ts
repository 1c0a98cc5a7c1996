// The OpenAPI document: valid OpenAPI 3.1 (checked against the specification's own schema), the
// committed copy (docs/openapi.json, for reviewers and client generators) equal to what the code
// describes, and every error code an operation lists one the catalogue has at that status.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeApi } from '../../src/cli/openapi';
import { ERROR_CATALOGUE } from '../../src/lib/errors';
import { fresh } from '../helpers/fresh';

const committed = path.join(__dirname, '../../docs/openapi.json');
const production = describeApi({ NODE_ENV: 'test', API_DOCS: 'true' });
const withDiagnostics = describeApi({ NODE_ENV: 'test', API_DOCS: 'true', ENABLE_DIAGNOSTIC_ROUTES: 'true' });

type Operation = { operationId: string; responses: Record<string, { content?: Record<string, { schema?: { allOf?: unknown[] } }> }> };
const operations = (doc: Record<string, unknown>) =>
  Object.values(doc.paths as Record<string, Record<string, Operation>>).flatMap((item) => Object.values(item));

describe('the OpenAPI document', () => {
  it.each([
    ['as served by default', production],
    ['with the diagnostic routes', withDiagnostics],
  ])('is valid OpenAPI 3.1 %s', async (_name, doc) => {
    const { Validator } = await import('@seriousme/openapi-schema-validator');
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('is the committed docs/openapi.json (regenerate with `npm run openapi`)', async () => {
    expect(JSON.parse(readFileSync(committed, 'utf8'))).toEqual(production);
    // Again from declarations loaded inside this test (test/helpers/fresh.ts): every route's
    // fields, answers and limits are top-level declarations, and mutation testing holds them to
    // this document only through a test they run in.
    const loaded = await fresh(() => import('../../src/cli/openapi.js'));
    expect(loaded.describeApi({ NODE_ENV: 'test', API_DOCS: 'true' })).toEqual(production);
  });

  it('lists, per status, only error codes the catalogue gives that status', () => {
    for (const op of operations(withDiagnostics)) {
      for (const [status, response] of Object.entries(op.responses)) {
        const branch = response.content?.['application/json']?.schema?.allOf?.[1] as
          { properties: { error: { properties: { code: { enum: string[] } } } } } | undefined;
        for (const code of branch?.properties.error.properties.code.enum ?? []) {
          expect(ERROR_CATALOGUE[code as keyof typeof ERROR_CATALOGUE].status, `${op.operationId} ${status} ${code}`).toBe(Number(status));
        }
      }
    }
  });

  it('describes authentication, limits and errors on the operations that have them', () => {
    const byId = new Map(operations(withDiagnostics).map((op) => [op.operationId, op as Operation & { security: unknown[]; description: string }]));
    expect(byId.get('getMe')!.security).toEqual([{ bearerAuth: [] }]);
    expect(Object.keys(byId.get('getMe')!.responses)).toEqual(expect.arrayContaining(['200', '401', '429', '503']));
    expect(byId.get('login')!.description).toMatch(/Rate limit `login` \(scope LOGIN\): \d+ failed attempts per 15 min, counted by client IP and email/);
    // 503: admission control may refuse any API request while the process is overloaded, and the database may be down.
    expect(Object.keys(byId.get('getItem')!.responses).sort()).toEqual(['200', '400', '404', '413', '415', '422', '429', '500', '503']);
    expect(byId.get('health')!.responses).not.toHaveProperty('503', expect.objectContaining({ description: expect.stringContaining('service_unavailable') }));
    expect(byId.get('metrics')!.security).toEqual([{ opsToken: [] }, {}]);
    expect(byId.get('health')!.responses).not.toHaveProperty('429');
  });
});
