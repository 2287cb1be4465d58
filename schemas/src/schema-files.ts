import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Folder holding the JSON Schema files: the single source of truth for every message on the bus. */
export const schemaDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'json');

export type SchemaDocument = { $id: string; title: string } & Record<string, unknown>;

/** Every schema file, parsed, in a stable order. */
export function loadSchemaDocuments(): SchemaDocument[] {
  return readdirSync(schemaDir)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()
    .map((f) => {
      const doc = JSON.parse(readFileSync(join(schemaDir, f), 'utf8')) as SchemaDocument;
      if (typeof doc.$id !== 'string' || typeof doc.title !== 'string') {
        throw new Error(`schema ${f} must have a string $id and title`);
      }
      return doc;
    });
}
