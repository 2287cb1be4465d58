import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { renderTypes, generatedTypesPath } from './render-types.ts';
import { generatedDocumentsPath, renderDocuments } from './render-documents.ts';
import {
  generatedValidatorsPath,
  generatedValidatorTypesPath,
  renderValidators,
  renderValidatorTypes,
} from './render-validators.ts';

// The list of schema files first: the types are rendered from the folder, the program loads the list.
writeFileSync(generatedDocumentsPath, renderDocuments());
writeFileSync(generatedTypesPath, await renderTypes());
writeFileSync(generatedValidatorsPath, renderValidators());
writeFileSync(generatedValidatorTypesPath, renderValidatorTypes());
for (const p of [
  generatedDocumentsPath,
  generatedTypesPath,
  generatedValidatorsPath,
  generatedValidatorTypesPath,
])
  console.log(`wrote ${relative(process.cwd(), p)}`);
