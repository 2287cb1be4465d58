import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { generatedTypesPath, renderTypes } from '../scripts/render-types.ts';

it('the committed TypeScript types match the JSON Schemas (run `npm run gen:types` when this fails)', async () => {
  const expected = await renderTypes();
  const committed = readFileSync(generatedTypesPath, 'utf8');
  assert.ok(
    committed === expected,
    'schemas/generated/messages.ts is stale: run `npm run gen:types` and commit it',
  );
});
