import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Not from schema-files.ts, which imports the module this renders.
const schemaDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'json');
const schemaFileNames = () =>
  readdirSync(schemaDir)
    .filter((f) => f.endsWith('.schema.json'))
    .sort();

export const generatedDocumentsPath = join(schemaDir, '..', 'generated', 'documents.ts');

/** The module that imports every schema file (deterministic output, in file-name order). */
export function renderDocuments(): string {
  const files = schemaFileNames();
  const ident = (i: number) => `s${i}`;
  return [
    '/* Generated from schemas/json/*.schema.json by `npm run gen:types`. Do not edit: add the schema and regenerate. */',
    ...files.map((f, i) => `import ${ident(i)} from '../json/${f}' with { type: 'json' };`),
    '',
    '/** Every schema file with its name, imported (so bundles carry them). */',
    'export const schemaDocuments: readonly (readonly [string, unknown])[] = [',
    ...files.map((f, i) => `  ['${f}', ${ident(i)}],`),
    '];',
    '',
  ].join('\n');
}
