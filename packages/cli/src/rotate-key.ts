import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createUser } from '@nats-io/nkeys';
import { parseRegistry, registryFile, retireKey, TrustConfigError, type ServerConfigInput } from '@haul/bus';
import { CliError } from './errors.ts';
import { accountJwts, readOperatorKeys, userCreds, type OperatorKeys } from './operator-mode.ts';
import {
  secretsFiles,
  secretsModes,
  serverConfigOf,
  writeSecretsFile,
  type ServerSettings,
} from './secrets-dir.ts';

/*
 * `haul rotate-key`: one identity gets a new nkey; its old key is retired in identities.json, believed only for the
 * events stored up to a sequence, and nats-server.conf is rendered again so that only the new key logs in
 * (docs/security.md, "Rotating keys"): without the old key's user, or in operator mode (`--auth jwt`) with the old key
 * revoked in the haul account's JWT and a new .creds file. The command line is commands/rotate-key.ts.
 */

/** The cluster's registry (identities.json); @haul/bus's `Registry` is the metrics' one. */
type Registry = ReturnType<typeof parseRegistry>;

/** What a rotation did: the identity's new key, and the key it retired with the last event sequence it vouches for. */
export type Rotation = {
  identity: string;
  publicKey: string;
  retired: { publicKey: string; eventsUpTo: number };
  /** The files written, in DIR. */
  wrote: string[];
};

export type { ServerSettings } from './secrets-dir.ts';

/** A quoted value of the server's config as the renderer writes it (JSON string syntax). */
const quoted = '("(?:[^"\\\\]|\\\\.)*")';

function setting(text: string, pattern: string, name: string, file: string): string {
  const m = new RegExp(pattern, 'm').exec(text);
  if (!m) throw new CliError('error', `${file}: no ${name} (is it the file haul init-cluster wrote?)`);
  return JSON.parse(m[1]!) as string;
}

/**
 * The settings of a nats-server.conf as renderServerConfig wrote it: its listen address, its JetStream store and its
 * TLS files (every `<what>_file` of its tls block, as the renderer's input names them: cert_file → certFile).
 */
export function serverSettingsOf(text: string, file: string = secretsFiles.serverConfig): ServerSettings {
  const listen = setting(text, `^listen: ${quoted}$`, 'listen', file);
  const storeDir = setting(text, `^jetstream \\{ store_dir: ${quoted} \\}$`, 'jetstream store_dir', file);
  const block = /^tls \{([^}]*)\}/m.exec(text)?.[1] ?? '';
  const tls: Record<string, string> = {};
  // A value is a quoted string (which may hold spaces and escaped quotes) or, refused below, a bare word.
  for (const m of block.matchAll(new RegExp(`\\b([a-z]+)_file: (${quoted}|[^\\s,]+),?(?=\\s|$)`, 'g'))) {
    if (!new RegExp(`^${quoted}$`).test(m[2]!))
      throw new CliError('error', `${file}: tls ${m[1]!}_file is ${m[2]!}, not a quoted path`);
    tls[`${m[1]!}File`] = JSON.parse(m[2]!) as string;
  }
  for (const need of ['cert', 'key', 'ca'])
    if (tls[`${need}File`] === undefined)
      throw new CliError('error', `${file}: no tls ${need}_file (is it the file haul init-cluster wrote?)`);
  return { listen, storeDir, tls: tls as ServerConfigInput['tls'] };
}

/**
 * The operator JWT file an operator-mode nats-server.conf names (as the server reads it), or undefined for a
 * configuration of nkey users. The configuration says which mode the cluster runs, not the files beside it: a
 * folder whose operator seeds were moved offline is still in operator mode, and a stale account seed left by
 * `init-cluster --force` does not make an nkey cluster one.
 */
export function operatorJwtFileOf(text: string): string | undefined {
  const m = new RegExp(`^operator: ${quoted}$`, 'm').exec(text);
  return m ? (JSON.parse(m[1]!) as string) : undefined;
}

/** The registry of DIR; a file that is not one is an error naming the file and the field. */
export function registryOf(text: string, file: string): Registry {
  try {
    return parseRegistry(JSON.parse(text) as unknown);
  } catch (err) {
    const what = err instanceof TrustConfigError ? err.message : 'not JSON';
    throw new CliError('error', `${file}: ${what}`, { cause: err });
  }
}

/** The keys of every identity's retired keys: revoked in operator mode. */
const retiredKeysOf = (registry: Registry): string[] =>
  registry.identities.flatMap((i) => (i.retiredKeys ?? []).map((k) => k.publicKey));

/**
 * nats-server.conf for the rotated registry, with the settings of the old one. Read back, it must say the same: a
 * setting this haul's renderer writes and the old file lacks (one written by an older haul) is refused, never
 * written as a hole.
 */
async function renderedAgain(registry: Registry, s: SecretsFolder): Promise<string> {
  const conf = s.operator
    ? serverConfigOf(registry, s.settings, {
        operatorJwtFile: s.operator.jwtFile,
        ...(await accountJwts(s.operator.keys, retiredKeysOf(registry))),
      })
    : serverConfigOf(registry, s.settings);
  const file = join(s.dir, secretsFiles.serverConfig);
  let again: ServerSettings;
  try {
    again = serverSettingsOf(conf, file);
  } catch (err) {
    throw new CliError(
      'error',
      `${(err as Error).message} once rendered again: the old file lacks a setting`,
      {
        cause: err,
      },
    );
  }
  if (JSON.stringify(again) !== JSON.stringify(s.settings) || operatorJwtFileOf(conf) !== s.operator?.jwtFile)
    throw new CliError('error', `${file}: rendered again, its settings would change; nothing was written`);
  return conf;
}

/**
 * A secrets folder as read before a rotation: its registry and the settings of its server configuration, and in
 * operator mode the keys that sign and the operator JWT file the configuration names.
 */
export type SecretsFolder = {
  dir: string;
  registry: Registry;
  settings: ServerSettings;
  operator?: { keys: OperatorKeys; jwtFile: string };
};

/** Read DIR's registry and server settings (both needed before anything is written). */
export async function readSecrets(dir: string): Promise<SecretsFolder> {
  const read = async (name: string) => {
    const path = join(dir, name);
    try {
      return { path, text: await readFile(path, 'utf8') };
    } catch (err) {
      throw new CliError('error', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const registry = await read(secretsFiles.registry);
  const conf = await read(secretsFiles.serverConfig);
  const folder: SecretsFolder = {
    dir,
    registry: registryOf(registry.text, registry.path),
    settings: serverSettingsOf(conf.text, conf.path),
  };
  const jwtFile = operatorJwtFileOf(conf.text);
  if (jwtFile !== undefined) folder.operator = { keys: readOperatorKeys(dir), jwtFile };
  return folder;
}

/**
 * Rotate `identity`'s key in DIR: a new seed (0600, never printed; in operator mode a new .creds file), the old key
 * retired in identities.json for the events up to `eventsUpTo`, nats-server.conf rendered again with the new key
 * alone (in operator mode: the old key revoked). The identity's file is written first, so a rotation cut short is
 * finished by running it again (the key the registry names then is the one retired).
 */
export async function rotateKey(s: SecretsFolder, identity: string, eventsUpTo: number): Promise<Rotation> {
  const old = s.registry.identities.find((i) => i.name === identity);
  if (!old) throw new CliError('usage', `no identity ${identity} in ${join(s.dir, secretsFiles.registry)}`);
  const kp = createUser();
  const registry = retireKey(s.registry, identity, kp.getPublicKey(), eventsUpTo);
  const conf = await renderedAgain(registry, s);
  const { name, role, node } = old;
  const [file, content] = s.operator
    ? [
        secretsFiles.creds(identity),
        await userCreds(s.operator.keys, node === undefined ? { name, role } : { name, role, node }, kp),
      ]
    : [secretsFiles.seed(identity), `${new TextDecoder().decode(kp.getSeed())}\n`];
  // Each file is replaced whole and fsynced (with the folder) before the next is written.
  writeSecretsFile(join(s.dir, file), content, secretsModes.secret);
  writeSecretsFile(
    join(s.dir, secretsFiles.registry),
    `${JSON.stringify(registryFile(registry), null, 2)}\n`,
    secretsModes.open,
  );
  writeSecretsFile(join(s.dir, secretsFiles.serverConfig), conf, secretsModes.open);
  return {
    identity,
    publicKey: kp.getPublicKey(),
    retired: { publicKey: old.publicKey, eventsUpTo },
    wrote: [file, secretsFiles.registry, secretsFiles.serverConfig],
  };
}
