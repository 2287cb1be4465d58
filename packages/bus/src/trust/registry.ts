import { readFileSync } from 'node:fs';
import { fromPublic } from '@nats-io/nkeys';

/** The roles of the trust design (docs/security.md, "Signed commands and events"). */
export const roles = ['coordinator', 'agent', 'streamer', 'scheduler', 'ops'] as const;
export type Role = (typeof roles)[number];

/**
 * A key an identity signed with before `haul rotate-key` replaced it: believed only for messages of the event stream
 * stored at a sequence up to `eventsUpTo` (the server assigns sequences, so whoever holds the old seed cannot place a
 * new message there), never for anything else (docs/security.md, "Rotating keys").
 */
export type RetiredKey = { publicKey: string; eventsUpTo: number };

/** One identity of the cluster: a NATS nkey user; agents and streamers belong to a node. */
export type Identity = {
  name: string;
  role: Role;
  node?: string;
  publicKey: string;
  /** Its earlier keys, oldest first (absent when it was never rotated). */
  retiredKeys?: readonly RetiredKey[];
};

/** The public registry (identities.json): who may sign, by public key. */
export type Registry = {
  cluster: string;
  identities: readonly Identity[];
  /** Current keys only: what signs commands, requests and new events. */
  byKey: ReadonlyMap<string, Identity>;
  /** Retired keys: whose they were, and up to which event sequence they are believed. */
  retired: ReadonlyMap<string, { identity: Identity; eventsUpTo: number }>;
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

function parseRetiredKey(raw: unknown, at: string): RetiredKey {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new TrustConfigError(at, 'must be an object { publicKey, eventsUpTo }');
  const r = raw as Record<string, unknown>;
  const publicKey = r['publicKey'];
  if (typeof publicKey !== 'string' || !isUserKey(publicKey))
    throw new TrustConfigError(`${at}.publicKey`, 'must be an nkey user public key (U...)');
  const eventsUpTo = r['eventsUpTo'];
  if (typeof eventsUpTo !== 'number' || !Number.isSafeInteger(eventsUpTo) || eventsUpTo < 0)
    throw new TrustConfigError(
      `${at}.eventsUpTo`,
      'must be an event stream sequence (a whole number, 0 or more)',
    );
  return { publicKey, eventsUpTo };
}

function parseRetiredKeys(raw: unknown, at: string): RetiredKey[] | undefined {
  if (raw === undefined) return undefined;
  if (!Array.isArray(raw)) throw new TrustConfigError(at, 'must be an array of { publicKey, eventsUpTo }');
  return raw.map((k, j) => parseRetiredKey(k, `${at}[${j}]`));
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
  const retiredKeys = parseRetiredKeys(r['retiredKeys'], `${at}.retiredKeys`);
  return {
    name,
    role: role as Role,
    ...(perNode ? { node: node as string } : {}),
    publicKey,
    ...(retiredKeys ? { retiredKeys } : {}),
  };
}

/** Every key of the registry with the field that holds it, current keys first within an identity. */
function keysOf(identities: readonly Identity[]): { key: string; field: string }[] {
  return identities.flatMap((identity, i) => [
    { key: identity.publicKey, field: `identities[${i}].publicKey` },
    ...(identity.retiredKeys ?? []).map((k, j) => ({
      key: k.publicKey,
      field: `identities[${i}].retiredKeys[${j}].publicKey`,
    })),
  ]);
}

/** A key belongs to one identity, once: current or retired, never both, never twice. */
function checkKeysUnique(identities: readonly Identity[]): void {
  const seen = new Map<string, string>();
  for (const { key, field } of keysOf(identities)) {
    const first = seen.get(key);
    if (first !== undefined)
      throw new TrustConfigError(field, `the same key as ${first}: a key is registered once`);
    seen.set(key, field);
  }
}

/** Validate identities.json: every identity well-formed, names unique, every key (current or retired) once. */
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
  const names = new Set<string>();
  identities.forEach((id, i) => {
    if (names.has(id.name)) throw new TrustConfigError(`identities[${i}].name`, `${id.name} appears twice`);
    names.add(id.name);
  });
  checkKeysUnique(identities);
  const byKey = new Map(identities.map((id) => [id.publicKey, id]));
  const retired = new Map(
    identities.flatMap((identity) =>
      (identity.retiredKeys ?? []).map((k) => [k.publicKey, { identity, eventsUpTo: k.eventsUpTo }] as const),
    ),
  );
  return { cluster, identities, byKey, retired };
}

/**
 * May a retired key vouch for this message? Only for a message of the event stream (`eventSeq`, its stream sequence)
 * stored at or before the sequence it was retired at: never for a command, a request, an inspection (no `eventSeq`),
 * nor for an event stored after.
 */
export const retiredKeyBelieved = (eventsUpTo: number, eventSeq: number | undefined): boolean =>
  eventSeq !== undefined && eventSeq <= eventsUpTo;

/**
 * Why `name`'s current key cannot be retired at event sequence `eventsUpTo`, if it cannot: the registry has no such
 * identity, or an earlier retirement of it reaches further (the current key only signed events after that one, so
 * retiring it below would un-believe them all; a stream's last sequence below it is another NATS' stream).
 */
export function retirementProblem(r: Registry, name: string, eventsUpTo: number): string | undefined {
  const identity = r.identities.find((i) => i.name === name);
  if (!identity) return `the registry has no identity ${name}`;
  const latest = Math.max(0, ...(identity.retiredKeys ?? []).map((k) => k.eventsUpTo));
  if (eventsUpTo < latest)
    return `${name} already has a key retired at event sequence ${latest}: its current key signed only later events, so ${eventsUpTo} would refuse them all`;
  return undefined;
}

/**
 * The registry after `name`'s key is rotated: `newPublicKey` becomes its key, the old one is retired, believed for the
 * events stored up to `eventsUpTo`. Throws TrustConfigError when retirementProblem names one or the key is not new.
 */
export function retireKey(r: Registry, name: string, newPublicKey: string, eventsUpTo: number): Registry {
  const problem = retirementProblem(r, name, eventsUpTo);
  if (problem) throw new TrustConfigError('identities', problem);
  const file = registryFile(r);
  file.identities = file.identities.map((id) =>
    id.name !== name
      ? id
      : {
          ...id,
          publicKey: newPublicKey,
          retiredKeys: [...(id.retiredKeys ?? []), { publicKey: id.publicKey, eventsUpTo }],
        },
  );
  return parseRegistry(file);
}

/** The registry as identities.json holds it (what parseRegistry reads back to the same registry). */
export function registryFile(r: Registry): { cluster: string; identities: Identity[] } {
  return { cluster: r.cluster, identities: r.identities.map((id) => ({ ...id })) };
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
