import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaDocuments } from '../generated/documents.ts';

/** Folder holding the JSON Schema files: the single source of truth for every message on the bus. */
export const schemaDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'json');

export type SchemaDocument = { $id: string; title: string } & Record<string, unknown>;

const checked = (f: string, doc: SchemaDocument): SchemaDocument => {
  if (typeof doc.$id !== 'string' || typeof doc.title !== 'string') {
    throw new Error(`schema ${f} must have a string $id and title`);
  }
  return doc;
};

const schemaFileNames = (): string[] =>
  readdirSync(schemaDir)
    .filter((f) => f.endsWith('.schema.json'))
    .sort();

/** Every schema file, read from the folder now (for the generators, which must see what is there). */
export function readSchemaDocuments(): SchemaDocument[] {
  return schemaFileNames().map((f) =>
    checked(f, JSON.parse(readFileSync(join(schemaDir, f), 'utf8')) as SchemaDocument),
  );
}

/**
 * Every schema, as imported into the program (generated/documents.ts imports each file, so a bundled service
 * carries its schemas and reads no files; a test checks the list against the folder).
 */
export function loadSchemaDocuments(): SchemaDocument[] {
  return schemaDocuments.map(([f, doc]) => checked(f, doc as SchemaDocument));
}
