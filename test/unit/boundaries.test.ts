// The layering rule in eslint.config.mjs: dependencies point down (config <- lib <- middleware <-
// http <- modules <- app <- server), and a module reaches another module only through its index.
// Small snippets are linted as if they lived at the given paths, with the project's own config.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

const ROOT = path.resolve(__dirname, '../..');

// The project's config, without type information (the snippets exist in no tsconfig) and with
// only the layering rule running.
const eslint = new ESLint({
  cwd: ROOT,
  overrideConfig: { languageOptions: { parserOptions: { project: false, projectService: false } } },
  ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports',
});

async function findings(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages.map((m) => `${m.ruleId ?? 'fatal'}: ${m.message}`);
}

describe('dependencies point down (no-restricted-imports, per directory)', () => {
  it.each([
    ['src/lib/example.ts', "import { authenticate } from '../middleware/authenticate';"],
    ['src/lib/db/example.ts', "import { route } from '../../http/route';"],
    ['src/lib/example.ts', "import { createApp } from '../app';"],
    ['src/config/example.ts', "import { AppError } from '../lib/errors';"],
    ['src/middleware/example.ts', "import { defineModule } from '../http/module';"],
    ['src/middleware/example.ts', "import { usersModule } from '../modules/users';"],
    ['src/http/example.ts', "import { modules } from '../modules';"],
    ['src/modules/items/example.ts', "import { createApp } from '../../app';"],
    ['src/modules/auth/example.ts', "import { createUser } from '../users/repository';"],
    ['src/modules/auth/example.ts', "import type { User } from '../users/schema';"],
    ['src/app.ts', "import { main } from './server';"],
  ])('%s: %s is refused', async (file, code) => {
    const messages = await findings(file, `${code}\n`);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/^no-restricted-imports: /);
  });

  it.each([
    ['src/config/example.ts', "import { parseBoolean } from './parsers';"],
    ['src/lib/example.ts', "import type { Config } from '../config';"],
    ['src/lib/db/example.ts', "import { measureMs } from '../timeout';"],
    ['src/middleware/example.ts', "import { AppError } from '../lib/errors';"],
    ['src/http/example.ts', "import { mountAt } from '../middleware/routing';"],
    ['src/modules/auth/example.ts', "import { createUser } from '../users';"],
    ['src/modules/auth/example.ts', "import { createUser } from '../users/index';"],
    ['src/modules/auth/example.ts', "import { loginBody } from './schema';"],
    ['src/modules/items/example.ts', "import { route } from '../../http/route';"],
    ['src/modules/index.ts', "import { authModule } from './auth';"],
    ['src/server.ts', "import { createApp } from './app';"],
    ['src/cli/example.ts', "import { createApp } from '../app';"],
  ])('%s: %s is allowed', async (file, code) => {
    expect(await findings(file, `${code}\n`)).toEqual([]);
  });
});
