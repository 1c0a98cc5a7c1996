// GET /openapi.json and GET /api/docs: served by the app itself, describing exactly what it mounts,
// outside the API's rate limit, and absent when API_DOCS is off (production's default).
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountedRoutes } from '../../src/app';
import { buildDocument } from '../../src/http/openapi';
import { VERSION } from '../../src/version';
import { createTestContext, type TestContext } from '../helpers/app';

let on: TestContext;
let off: TestContext;
beforeAll(async () => {
  [on, off] = await Promise.all([createTestContext({ env: { RATE_LIMIT_API_MAX: '2' } }), createTestContext({ env: { API_DOCS: 'false' } })]);
});
afterAll(async () => Promise.all([on?.close(), off?.close()]));

describe('the API description', () => {
  it('is the document of the routes this app mounts, as JSON', async () => {
    const res = await request(on.app).get('/openapi.json').expect(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.body).toEqual(buildDocument(mountedRoutes(on.app), { config: on.config, version: VERSION }));
    // This context mounts the diagnostic routes: they are described; the other context's are not.
    expect(res.body.paths).toHaveProperty(['/api/v1/_diag/whoami']);
  });

  it('is not under the API rate limit, nor is the viewer', async () => {
    for (let i = 0; i < 4; i++) {
      await request(on.app).get('/openapi.json').expect(200);
      await request(on.app).get('/api/docs').expect(200);
    }
    // The API's own limit (2 here) still applies to the API.
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(on.app).get('/api/v1/items')).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('answers 404 when API_DOCS is off, and the rest of the app is unchanged', async () => {
    for (const path of ['/openapi.json', '/api/docs']) {
      const res = await request(off.app).get(path).expect(404);
      expect(res.body.error.code).toBe('not_found');
    }
    await request(off.app).get('/health').expect(200);
    await request(off.app).get('/api/v1/items').expect(200);
  });
});
