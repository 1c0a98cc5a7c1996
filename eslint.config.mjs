// ESLint flat config: @eslint/js and typescript-eslint recommended (type-checked), the security
// plugin, and the layering rule (dependencies point down; see docs/design.md, "Shape of the code").
import js from '@eslint/js';
import security from 'eslint-plugin-security';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// ---- layering ---------------------------------------------------------------------------------
// Layers, from the bottom: config <- lib <- middleware <- http <- modules <- app.ts (deps.ts) <-
// server.ts; cli may import anything. Relative imports are matched by the directory or file they
// climb to, so `../middleware/x` and `../../middleware/x` are both caught.
const upTo = (...names) => `^(\\.\\./)+(${names.join('|')})(/.*)?$`;
const layer = (names, where) => ({
  regex: upTo(...names),
  message: `Dependencies point down: ${where} must not import from ${names.join(', ')} (docs/design.md, "Shape of the code").`,
});
const restrict = (...patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

const boundaries = [
  {
    files: ['src/config/**/*.ts'],
    rules: restrict(layer(['lib', 'middleware', 'http', 'modules', 'app', 'deps', 'server', 'cli'], 'src/config')),
  },
  {
    files: ['src/lib/**/*.ts'],
    rules: restrict(layer(['middleware', 'http', 'modules', 'app', 'deps', 'server', 'cli'], 'src/lib')),
  },
  {
    files: ['src/middleware/**/*.ts'],
    rules: restrict(layer(['http', 'modules', 'app', 'deps', 'server', 'cli'], 'src/middleware')),
  },
  {
    files: ['src/http/**/*.ts'],
    rules: restrict(layer(['modules', 'app', 'deps', 'server', 'cli'], 'src/http')),
  },
  {
    files: ['src/modules/**/*.ts'],
    ignores: ['src/modules/index.ts'],
    rules: restrict(layer(['app', 'deps', 'server', 'cli'], 'src/modules'), {
      // `../users` and `../users/index` are another module's public surface; anything deeper is
      // one of its internals.
      regex: '^\\.\\./[^./][^/]*/(?!index$).+$',
      message:
        'A module imports another module only through its index (its public surface): export what is needed from that index, or move the shared piece down to src/lib.',
    }),
  },
  {
    files: ['src/modules/index.ts'],
    rules: restrict(layer(['app', 'deps', 'server', 'cli'], 'src/modules')),
  },
  {
    files: ['src/deps.ts', 'src/app.ts'],
    rules: restrict({ regex: '^\\./(server|cli)(/.*)?$', message: 'Dependencies point down: only src/server.ts and src/cli import the app and the process.' }),
  },
];

export default tseslint.config(
  {
    ignores: ['dist/**', 'coverage/**', 'node_modules/**', 'docs/**', '.stryker-tmp/**', 'reports/**'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  security.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: {
        // tsconfig.test.json covers src/, test/, bench/ and the vitest config.
        project: ['./tsconfig.test.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Flags every `object[key]` whatever the key's type; here keys are typed (unions, whitelists
      // mapped in code), request input never names a property (query hardening drops prototype
      // keys, repositories map sort and filter names through whitelists), and the rule's hundred
      // findings were all typed lookups. Off, rather than a comment on every index expression.
      'security/detect-object-injection': 'off',
      // `async` without `await` is how this code declares "returns a promise, and a throw is a
      // rejection" when implementing an async interface (the in-memory store mirrors Redis, test
      // fakes mirror stores and probes). Promise misuse is caught by no-floating-promises and
      // no-misused-promises, which stay on.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['**/*.ts', '**/*.mts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
    },
  },
  {
    // Tests and the benchmark harness: paths and patterns are their own (temporary directories,
    // fixtures, the repository's files), never a client's input; supertest types a response body
    // as `any`, and every integration-test response is checked against the OpenAPI document
    // (test/helpers/contract.ts), so reading `res.body.x` is not the unchecked access these rules
    // guard against.
    files: ['test/**/*.ts'],
    rules: {
      'security/detect-non-literal-fs-filename': 'off',
      'security/detect-non-literal-regexp': 'off',
      'security/detect-unsafe-regex': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Command-line tools, scripts and the benchmark read and write the files their operator names.
    files: ['src/cli/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts'],
    rules: { 'security/detect-non-literal-fs-filename': 'off' },
  },
  {
    // Plain JavaScript (the PM2 process file, the benchmark's baseline servers, this file): no
    // type information, CommonJS except for the .mjs files.
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: { sourceType: 'commonjs' },
    rules: { '@typescript-eslint/no-require-imports': 'off' }, // CommonJS files load modules with require()
  },
  ...boundaries,
);
