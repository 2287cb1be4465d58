import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { generatedTypesPath, renderTypes } from '../scripts/render-types.ts';
import { generatedDocumentsPath, renderDocuments } from '../scripts/render-documents.ts';
import {
  generatedValidatorsPath,
  generatedValidatorTypesPath,
  renderValidators,
  renderValidatorTypes,
} from '../scripts/render-validators.ts';
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

it('the committed validators are what Ajv compiles from the JSON Schemas (run `npm run gen:types` when this fails)', () => {
  assert.ok(
    readFileSync(generatedValidatorsPath, 'utf8') === renderValidators() &&
      readFileSync(generatedValidatorTypesPath, 'utf8') === renderValidatorTypes(),
    'schemas/generated/validators.cjs is stale: run `npm run gen:types` and commit it',
  );
});
