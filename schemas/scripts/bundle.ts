import type { SchemaDocument } from '../src/schema-files.ts';

const base = 'https://haul.dev/schemas/';

/**
 * Merge every schema into one document whose $defs hold each top-level message (by title) and every
 * shared definition, with $refs rewritten to local pointers, so one generated file has each type once.
 */
export function bundleForTypes(docs: SchemaDocument[]): Record<string, unknown> {
  const titleOf = new Map(docs.map((d) => [d.$id, d.title]));
  const defs: Record<string, unknown> = {};
  const rewrite = (node: unknown, ownId: string): unknown => {
    if (Array.isArray(node)) return node.map((n) => rewrite(n, ownId));
    if (node === null || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out[k] = localRef(v, ownId);
      else if (k === 'discriminator' || k === '$schema' || k === '$id') continue;
      else out[k] = rewrite(v, ownId);
    }
    return out;
  };
  const localRef = (ref: string, ownId: string): string => {
    const [file, pointer] = ref.startsWith('#') ? [ownId, ref.slice(1)] : ref.split('#');
    if (!file?.startsWith(base)) throw new Error(`unexpected $ref ${ref}`);
    const title = titleOf.get(file);
    if (!title) throw new Error(`$ref to unknown schema ${ref}`);
    if (!pointer) return `#/$defs/${title}`;
    const m = /^\/\$defs\/([A-Za-z0-9]+)$/.exec(pointer);
    if (m) return `#/$defs/${m[1]}`;
    return `#/$defs/${title}${pointer.replace(/^/, '/').replace('//', '/')}`.replace(
      `#/$defs/${title}/`,
      `#/$defs/${title}/`,
    );
  };
  for (const doc of docs) {
    const { $defs, ...rest } = rewrite(doc, doc.$id) as Record<string, unknown> & {
      $defs?: Record<string, unknown>;
    };
    for (const [name, def] of Object.entries($defs ?? {})) defs[name] = def;
    if (Object.keys(rest).some((k) => !['title', 'description'].includes(k))) defs[doc.title] = rest;
  }
  return { title: 'HaulMessages', type: 'object', additionalProperties: false, properties: {}, $defs: defs };
}
