import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { renderServerConfig, type IdentitiesFile, type ServerAuth } from '@haul/bus';

/*
 * The secrets folder `haul init-cluster --out DIR` writes and `haul rotate-key --dir DIR` rewrites: the names of its
 * files, their modes, how a file of it is written, and the server configuration of its registry. Both commands use
 * these, so the folder one writes is the folder the other reads.
 */

/** The files of a secrets folder that name its identities. */
export const secretsFiles = {
  /** The public keys of every identity (and their retired keys): the cluster's registry. */
  registry: 'identities.json',
  serverConfig: 'nats-server.conf',
  /** An identity's nkey seed (nkey users). */
  seed: (name: string): string => `${name}.nk`,
  /** An identity's .creds file: its user JWT and nkey seed (operator mode, `--auth jwt`). */
  creds: (name: string): string => `${name}.creds`,
  /** Operator mode: the operator's seed (signs the accounts' JWTs; keep it offline) and its JWT (the server trusts it). */
  operatorSeed: 'operator.nk',
  operatorJwt: 'operator.jwt',
  /** Operator mode: the seed of the haul account, which signs its users' JWTs. */
  accountSeed: 'account.nk',
} as const;

/** The mode of a file of the folder: `secret` (seeds, private keys) only for its owner, `open` for anyone to read. */
export const secretsModes = { secret: 0o600, open: 0o644 } as const;

/**
 * Write a file of the folder with exactly this mode, whatever the umask and whatever mode a file it replaces had, and
 * durably: the data goes to a temporary file beside it, which is fsynced, renamed over the file, and then the folder
 * is fsynced. A reader sees the old file or the new one, never part of it; after a power loss the name does not
 * survive without its data (identities.json is the only record of the retired keys).
 */
export function writeSecretsFile(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      writeFileSync(fd, data);
      fchmodSync(fd, mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/** A registry as identities.json holds it (init-cluster's, or one parsed with its retired keys). */
type RegistryLike = { cluster: string; identities: readonly IdentitiesFile['identities'][number][] };

/** What nats-server.conf says besides its users: the renderer's input without them. */
export type ServerSettings = Omit<Parameters<typeof renderServerConfig>[0], 'auth' | 'cluster'>;

/** A registry's identities as users of the server's configuration: one nkey user per identity, by its current key. */
export function serverUsersOf(registry: RegistryLike): Extract<ServerAuth, { kind: 'nkey' }>['users'] {
  return registry.identities.map(({ name, role, node, publicKey }) => ({
    identity: node === undefined ? { name, role } : { name, role, node },
    publicKey,
  }));
}

/**
 * nats-server.conf of a registry, with these settings (listen address, store, TLS files): its identities as nkey
 * users, or operator mode's trust (the users are then in their .creds files).
 */
export function serverConfigOf(
  registry: RegistryLike,
  settings: ServerSettings,
  operator?: Omit<Extract<ServerAuth, { kind: 'operator' }>, 'kind'>,
): string {
  const auth: ServerAuth = operator
    ? { kind: 'operator', ...operator }
    : { kind: 'nkey', users: serverUsersOf(registry) };
  return renderServerConfig({ ...settings, cluster: registry.cluster, auth });
}
