import { readFileSync } from 'node:fs';
import { fromPublic } from '@nats-io/nkeys';

/** The roles of issue 12 (docs/security.md, "Signed commands and events"). */
export const roles = ['coordinator', 'agent', 'streamer', 'scheduler', 'ops'] as const;
export type Role = (typeof roles)[number];

/** One identity of the cluster: a NATS nkey user; agents and streamers belong to a node. */
export type Identity = { name: string; role: Role; node?: string; publicKey: string };

/** The public registry (identities.json): who may sign, by public key. */
export type Registry = {
  cluster: string;
  identities: readonly Identity[];
  byKey: ReadonlyMap<string, Identity>;
};

/** A secrets file or setting that is missing or wrong; `field` names the part (a JSON path or an env variable). */
export class TrustConfigError extends Error {
  readonly field: string;
  constructor(field: string, message: string, options?: ErrorOptions) {
    super(`${field}: ${message}`, options);
    this.name = 'TrustConfigError';
    this.field = field;
  }
}

const nodeRoles: readonly Role[] = ['agent', 'streamer'];
const nodeName = /^[A-Za-z0-9_-]+$/;

/** The name an identity must have: its role, or <role>@<node> for the per-node roles. */
export const identityName = (role: Role, node?: string): string =>
  node === undefined ? role : `${role}@${node}`;

function isUserKey(key: string): boolean {
  try {
    fromPublic(key);
    return key.startsWith('U');
  } catch {
    return false;
  }
}

function parseIdentity(raw: unknown, at: string): Identity {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new TrustConfigError(at, 'must be an object');
  const r = raw as Record<string, unknown>;
  const role = r['role'];
  if (typeof role !== 'string' || !(roles as readonly string[]).includes(role))
    throw new TrustConfigError(`${at}.role`, `must be one of ${roles.join(', ')}`);
  const node = r['node'];
  const perNode = nodeRoles.includes(role as Role);
  if (perNode && (typeof node !== 'string' || !nodeName.test(node)))
    throw new TrustConfigError(`${at}.node`, `a ${role} needs its node's name (letters, digits, _ and -)`);
  if (!perNode && node !== undefined) throw new TrustConfigError(`${at}.node`, `a ${role} has no node`);
  const name = identityName(role as Role, perNode ? (node as string) : undefined);
  if (r['name'] !== name) throw new TrustConfigError(`${at}.name`, `must be ${JSON.stringify(name)}`);
  const publicKey = r['publicKey'];
  if (typeof publicKey !== 'string' || !isUserKey(publicKey))
    throw new TrustConfigError(`${at}.publicKey`, 'must be an nkey user public key (U...)');
  return perNode
    ? { name, role: role as Role, node: node as string, publicKey }
    : { name, role: role as Role, publicKey };
}

/** Validate identities.json: every identity well-formed, names and keys unique. */
export function parseRegistry(raw: unknown): Registry {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new TrustConfigError('$', 'the registry must be an object');
  const r = raw as Record<string, unknown>;
  const cluster = r['cluster'];
  if (typeof cluster !== 'string' || cluster === '') throw new TrustConfigError('cluster', 'must be a name');
  const list = r['identities'];
  if (!Array.isArray(list) || list.length === 0)
    throw new TrustConfigError('identities', 'must be a non-empty array');
  const identities = list.map((x, i) => parseIdentity(x, `identities[${i}]`));
  const byKey = new Map<string, Identity>();
  const names = new Set<string>();
  identities.forEach((id, i) => {
    if (names.has(id.name)) throw new TrustConfigError(`identities[${i}].name`, `${id.name} appears twice`);
    if (byKey.has(id.publicKey))
      throw new TrustConfigError(`identities[${i}].publicKey`, 'the same key belongs to two identities');
    names.add(id.name);
    byKey.set(id.publicKey, id);
  });
  return { cluster, identities, byKey };
}

/** Read and validate the registry file (HAUL_IDENTITIES_FILE). */
export function loadRegistry(file: string): Registry {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TrustConfigError('HAUL_IDENTITIES_FILE', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TrustConfigError('HAUL_IDENTITIES_FILE', `${file} is not JSON`, { cause: err });
  }
  return parseRegistry(raw);
}
