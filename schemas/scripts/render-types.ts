import { join } from 'node:path';
import { compile } from 'json-schema-to-typescript';
import { readSchemaDocuments, schemaDir } from '../src/schema-files.ts';
import { bundleForTypes } from './bundle.ts';

export const generatedTypesPath = join(schemaDir, '..', 'generated', 'messages.ts');

/** Render the TypeScript types of every message from the JSON Schemas (deterministic output). */
export async function renderTypes(): Promise<string> {
  const bundle = bundleForTypes(readSchemaDocuments());
  const ts = await compile(bundle, 'HaulMessages', {
    bannerComment:
      '/* Generated from schemas/json/*.schema.json by `npm run gen:types`. Do not edit: change the schema and regenerate. */',
    unreachableDefinitions: true,
    maxItems: -1,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    style: { singleQuote: true, printWidth: 110 },
  });
  return ts.replace(/export interface HaulMessages \{\}\n/, '');
}
