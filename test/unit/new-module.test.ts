// The generator's naming rules and its edit of the module list; test/system/generator.test.ts runs
// it for real on a copy of the project.
import { describe, expect, it } from 'vitest';
import { addToModuleList, namesOf, singularOf } from '../../scripts/new-module';

describe('new:module names', () => {
  it('derives every identifier from one kebab-case plural', () => {
    expect(namesOf('order-lines')).toEqual({
      kebab: 'order-lines',
      table: 'order_lines',
      camelPlural: 'orderLines',
      pascalPlural: 'OrderLines',
      pascalSingular: 'OrderLine',
      camelSingular: 'orderLine',
      words: 'order lines',
      singularWords: 'order line',
    });
    expect(namesOf('people', 'person')).toMatchObject({ pascalSingular: 'Person', camelSingular: 'person', table: 'people' });
    expect(namesOf('v2-invoices')).toMatchObject({ table: 'v2_invoices', pascalSingular: 'V2Invoice', camelPlural: 'v2Invoices' });
  });

  it('undoes the regular English plural endings only', () => {
    expect(singularOf('notes')).toBe('note');
    expect(singularOf('categories')).toBe('category');
    expect(singularOf('boxes')).toBe('box');
    expect(singularOf('addresses')).toBe('address');
    expect(singularOf('batches')).toBe('batch');
    expect(singularOf('wishes')).toBe('wish');
    expect(singularOf('days')).toBe('day');
    expect(singularOf('keys')).toBe('key');
    // Not a plural a rule can undo: the caller must say.
    expect(singularOf('people')).toBeUndefined();
    expect(singularOf('status')).toBeUndefined();
    expect(singularOf('class')).toBeUndefined();
    expect(() => namesOf('people')).toThrow(/--singular/);
  });

  it('refuses names that are not lower-case words joined by dashes', () => {
    for (const bad of ['Notes', 'order_lines', '-notes', 'notes-', 'order--lines', '1notes', 'notes/x', '../notes', '', `${'a'.repeat(40)}s`]) {
      expect(() => namesOf(bad), bad).toThrow(/is not a module name/);
    }
    expect(() => namesOf('notes', 'Note')).toThrow(/is not a singular word/);
    expect(() => namesOf('sheep', 'sheep')).toThrow(/same as the plural/);
  });
});

describe('new:module edit of src/modules/index.ts', () => {
  const source = `import type { ModuleDefinition } from '../http/module';
import { authModule } from './auth';
import { diagModule } from './diag';
import { usersModule } from './users';

export const modules: readonly ModuleDefinition[] = [authModule, usersModule, diagModule];
`;

  it('adds the import in name order and the module before the diagnostic routes', () => {
    const out = addToModuleList(source, namesOf('notes'));
    expect(out).toContain(`import { diagModule } from './diag';\nimport { notesModule } from './notes';\nimport { usersModule } from './users';`);
    expect(out).toContain('= [authModule, usersModule, notesModule, diagModule];');
  });

  it('adds it last, after the last import, when there is no diagnostic module', () => {
    const withoutDiag = source.replace(`import { diagModule } from './diag';\n`, '').replace(', diagModule]', ']');
    const out = addToModuleList(withoutDiag, namesOf('zebras'));
    expect(out).toContain(`import { usersModule } from './users';\nimport { zebrasModule } from './zebras';\n`);
    expect(out).toContain('= [authModule, usersModule, zebrasModule];');
  });

  it('refuses a file it does not recognise instead of guessing', () => {
    expect(() => addToModuleList('export const modules = [];\n', namesOf('notes'))).toThrow(/no module imports/);
    expect(() => addToModuleList(`import { authModule } from './auth';\nexport const all = [authModule];\n`, namesOf('notes'))).toThrow(
      /modules list was not found/,
    );
  });
});
