import { configSchemaIds, loadSchemaDocuments, type ConfigSchemaName } from '@haul/schemas';

/** One setting of a service, as its schema defines it (schemas/json/*-config.schema.json): the one place for it. */
export type Setting = {
  /** Its key in the config file and in errors, dotted: `nats.servers`. */
  key: string;
  path: string[];
  /** The environment variable that overrides the file. */
  env?: string;
  /** An array's separator in the environment (`,` for servers, `:` for folders). */
  separator?: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'array';
  default?: unknown;
  /** Another setting whose value is this one's default (e.g. the streamers' CA is the NATS CA). */
  defaultFrom?: string;
  /** Never printed (`writeOnly` in the schema). */
  secret: boolean;
  required: boolean;
  description: string;
};

type Node = Record<string, unknown>;

/** Follow a $ref (an absolute $id with a JSON pointer, or a pointer into the same document). */
function resolveRef(ref: string, doc: Node, docs: Map<string, Node>): { node: Node; doc: Node } {
  const [file, pointer = ''] = ref.split('#');
  const target = file ? docs.get(file) : doc;
  if (!target) throw new Error(`settings schema: unknown $ref ${ref}`);
  let node: unknown = target;
  for (const part of pointer.split('/').slice(1)) node = (node as Node)[part];
  if (node === undefined || node === null) throw new Error(`settings schema: broken $ref ${ref}`);
  return { node: node as Node, doc: target };
}

/** The schema node with its $ref followed; the property's own keywords (description, haulEnv, …) win. */
function merged(node: Node, doc: Node, docs: Map<string, Node>): { node: Node; doc: Node } {
  if (typeof node['$ref'] !== 'string') return { node, doc };
  const target = resolveRef(node['$ref'], doc, docs);
  const inner = merged(target.node, target.doc, docs);
  const { $ref: _ref, ...own } = node;
  return { node: { ...inner.node, ...own }, doc: inner.doc };
}

function typeOf(node: Node): Setting['type'] {
  const t = node['type'];
  if (t === 'string' || t === 'integer' || t === 'number' || t === 'boolean' || t === 'array') return t;
  if (Array.isArray(node['enum'])) return 'string';
  throw new Error(`settings schema: a setting of type ${JSON.stringify(t)} is not supported`);
}

function walk(
  node: Node,
  doc: Node,
  docs: Map<string, Node>,
  path: string[],
  required: boolean,
  out: Setting[],
) {
  const props = (node['properties'] ?? {}) as Record<string, Node>;
  const req = new Set((node['required'] ?? []) as string[]);
  for (const [name, raw] of Object.entries(props)) {
    const { node: p, doc: pdoc } = merged(raw, doc, docs);
    const here = [...path, name];
    if (p['type'] === 'object') {
      walk(p, pdoc, docs, here, required && req.has(name), out);
      continue;
    }
    const s: Setting = {
      key: here.join('.'),
      path: here,
      type: typeOf(p),
      secret: p['writeOnly'] === true,
      required: required && req.has(name) && p['default'] === undefined,
      description: typeof p['description'] === 'string' ? p['description'] : '',
    };
    if (typeof p['haulEnv'] === 'string') s.env = p['haulEnv'];
    if (typeof p['haulEnvSeparator'] === 'string') s.separator = p['haulEnvSeparator'];
    if (p['default'] !== undefined) s.default = p['default'];
    if (typeof p['haulDefaultFrom'] === 'string') s.defaultFrom = p['haulDefaultFrom'];
    out.push(s);
  }
}

const cache = new Map<ConfigSchemaName, Setting[]>();

/** Every setting of a service, in the schema's order (nested objects flattened to dotted keys). */
export function settingsOf(schema: ConfigSchemaName): Setting[] {
  const hit = cache.get(schema);
  if (hit) return hit;
  const docs = new Map(loadSchemaDocuments().map((d) => [d.$id, d as Node]));
  const root = docs.get(configSchemaIds[schema]);
  if (!root) throw new Error(`no settings schema ${schema}`);
  const out: Setting[] = [];
  walk(root, root, docs, [], true, out);
  cache.set(schema, out);
  return out;
}
