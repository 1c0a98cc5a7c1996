// `npm run openapi [-- --out FILE]`: prints the OpenAPI document of the app as configured by the
// environment (API_DOCS and ENABLE_DIAGNOSTIC_ROUTES decide which modules are mounted, as they do
// for the server), without connecting to anything: for the linter in CI, client generators and
// gateways. The server serves the same document at /openapi.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Express } from 'express';
import { createApp, mountedRoutes } from '../app';
import { ConfigError, loadConfig, type Config, type Env } from '../config';
import type { Dependencies } from '../deps';
import type { Database } from '../lib/db';
import { createLogger } from '../lib/logger';
import type { MountedRoute } from '../http/module';
import { buildDocument } from '../http/openapi';
import { MemoryStore } from '../lib/store/memory-store';
import { VERSION } from '../version';

/** A database that is never asked anything: describing routes runs none of them. */
const unusedDatabase: Database = {
  kind: 'postgres',
  query: () => Promise.reject(new Error('no database while describing the API')),
  exec: () => Promise.reject(new Error('no database while describing the API')),
  transaction: () => Promise.reject(new Error('no database while describing the API')),
  ping: () => Promise.reject(new Error('no database while describing the API')),
  close: () => Promise.resolve(),
};

/** An app built from this config over in-process stand-ins for every service: for reading its routes. */
export function inertApp(config: Config): Express {
  const store = new MemoryStore('describe:');
  const deps: Dependencies = {
    config,
    logger: createLogger({ level: 'error', json: true }),
    store,
    cache: store,
    db: unusedDatabase,
    close: () => store.close(),
  };
  return createApp(deps);
}

/** The routes an app built from this config mounts. */
export function describeRoutes(config: Config): readonly MountedRoute[] {
  return mountedRoutes(inertApp(config));
}

export function describeApi(env: Env): Record<string, unknown> {
  const config = loadConfig(env);
  return buildDocument(describeRoutes(config), { config, version: VERSION });
}

function main(): number {
  const args = process.argv.slice(2);
  const out = args[0] === '--out' ? args[1] : undefined;
  let text: string;
  try {
    text = `${JSON.stringify(describeApi({ ...process.env, API_DOCS: process.env.API_DOCS ?? 'true' }), null, 2)}\n`;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (out) {
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, text);
  } else process.stdout.write(text);
  return 0;
}

if (require.main === module) process.exitCode = main();
