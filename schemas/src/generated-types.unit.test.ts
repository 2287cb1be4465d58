import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { generatedTypesPath, renderTypes } from '../scripts/render-types.ts';
import { generatedDocumentsPath, renderDocuments } from '../scripts/render-documents.ts';
import { loadSchemaDocuments, readSchemaDocuments } from './schema-files.ts';

it('the committed TypeScript types match the JSON Schemas (run `npm run gen:types` when this fails)', async () => {
  const expected = await renderTypes();
  const committed = readFileSync(generatedTypesPath, 'utf8');
  assert.ok(
    committed === expected,
    'schemas/generated/messages.ts is stale: run `npm run gen:types` and commit it',
  );
});

it('the program loads every schema in the folder, as it is there (run `npm run gen:types` when this fails)', () => {
  assert.ok(
    readFileSync(generatedDocumentsPath, 'utf8') === renderDocuments(),
    'schemas/generated/documents.ts is stale: run `npm run gen:types` and commit it',
  );
  assert.deepEqual(loadSchemaDocuments(), readSchemaDocuments());
});
