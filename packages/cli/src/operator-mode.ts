import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decode, encodeAccount, encodeOperator, encodeUser, fmtCreds, type Operator } from '@nats-io/jwt';
import { createAccount, createOperator, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { userJwtPermissions, type AccountJwt, type Identity } from '@haul/bus';
import { CliError } from './errors.ts';
import { secretsFiles, secretsModes, writeSecretsFile } from './secrets-dir.ts';

/*
 * NATS operator mode for a haul cluster (`haul init-cluster --auth jwt`, docs/decisions.md §10): an operator key, a
 * system account and one haul account whose JetStream is unlimited; each identity is a user of the haul account, its
 * permissions (permissions.ts) in its user JWT, the JWT and the identity's seed together in <name>.creds. The server
 * trusts the operator and preloads both accounts' JWTs (resolver MEMORY: no resolver service to run). A retired key
 * (haul rotate-key) is revoked in the haul account's JWT, so its .creds file no longer logs in once the server reloads.
 *
 * The JWTs are made with @nats-io/jwt, the NATS project's own encoder (the claims `nsc` writes); no `nsc` is needed.
 */

/** `haul init-cluster --auth`: nkey users in the server's configuration, or operator mode with .creds files. */
export const clusterAuths = ['nkey', 'jwt'] as const;
export type ClusterAuth = (typeof clusterAuths)[number];

/** The keys of operator mode that sign: the operator's (accounts) and the haul account's (users). */
export type OperatorKeys = { operator: KeyPair; account: KeyPair; systemAccount: string };

/** No limit on the haul account: its connections, subscriptions, payloads and JetStream are haul's to use. */
const unlimited = {
  subs: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  conn: -1,
  leaf: -1,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
};

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A new operator with its system account and haul account, and the operator's JWT naming the system account. */
export async function createOperatorKeys(
  cluster: string,
): Promise<{ keys: OperatorKeys; operatorJwt: string }> {
  const operator = createOperator();
  const system = createAccount();
  const keys = { operator, account: createAccount(), systemAccount: system.getPublicKey() };
  const operatorJwt = await encodeOperator(cluster, operator, { system_account: keys.systemAccount });
  return { keys, operatorJwt };
}

/**
 * The time a retired key is revoked up to (nats-server refuses a user JWT whose issue time is at or before it):
 * 2100-01-01, so every JWT of the key, whenever and on whatever clock it was issued. A retired key never gets a new
 * one; and the account's JWT, rendered again at each rotation, says the same for it every time.
 */
export const revokedUpTo = 4_102_444_800;

/**
 * The two accounts' JWTs, signed by the operator: the system account's, and the haul account's with every key in
 * `revoked` revoked (every user JWT of that key is refused: revokedUpTo).
 */
export async function accountJwts(
  keys: OperatorKeys,
  revoked: readonly string[],
): Promise<{ systemAccount: AccountJwt; account: AccountJwt }> {
  const revocations = Object.fromEntries(revoked.map((k) => [k, revokedUpTo]));
  const account = await encodeAccount(
    'haul',
    keys.account.getPublicKey(),
    { limits: unlimited, revocations },
    { signer: keys.operator },
  );
  const system = await encodeAccount('SYS', keys.systemAccount, {}, { signer: keys.operator });
  return {
    systemAccount: { publicKey: keys.systemAccount, jwt: system },
    account: { publicKey: keys.account.getPublicKey(), jwt: account },
  };
}

/** An identity's .creds file: its user JWT (signed by the haul account, with its permissions) and its seed. */
export async function userCreds(keys: OperatorKeys, identity: Identity, user: KeyPair): Promise<string> {
  const jwt = await encodeUser(
    identity.name,
    user,
    keys.account,
    userJwtPermissions(identity, user.getPublicKey()),
  );
  return dec.decode(fmtCreds(jwt, user));
}

/** Write the operator's and the account's seeds (0600) and the operator's JWT (the server reads it) into DIR. */
export function writeOperatorFiles(dir: string, keys: OperatorKeys, operatorJwt: string): void {
  writeSecretsFile(
    join(dir, secretsFiles.operatorSeed),
    `${dec.decode(keys.operator.getSeed())}\n`,
    secretsModes.secret,
  );
  writeSecretsFile(
    join(dir, secretsFiles.accountSeed),
    `${dec.decode(keys.account.getSeed())}\n`,
    secretsModes.secret,
  );
  writeSecretsFile(join(dir, secretsFiles.operatorJwt), `${operatorJwt}\n`, secretsModes.open);
}

function seedIn(dir: string, name: string, prefix: string): KeyPair {
  const path = join(dir, name);
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new CliError(
      'error',
      `cannot read ${path}: ${(err as Error).message} (an operator-mode folder's nats-server.conf is rendered ` +
        `again with the account's JWT, which ${secretsFiles.operatorSeed} signs, and the new user's JWT, which ` +
        `${secretsFiles.accountSeed} signs: bring both back from where they are kept offline)`,
      { cause: err },
    );
  }
  if (!text.startsWith(prefix)) throw new CliError('error', `${path} does not hold a ${prefix}… seed`);
  return fromSeed(enc.encode(text));
}

/** The signing keys of an operator-mode folder: its operator and account seeds, the system account its JWT names. */
export function readOperatorKeys(dir: string): OperatorKeys {
  const operator = seedIn(dir, secretsFiles.operatorSeed, 'SO');
  const account = seedIn(dir, secretsFiles.accountSeed, 'SA');
  const path = join(dir, secretsFiles.operatorJwt);
  let systemAccount: string | undefined;
  try {
    const claims = decode<Operator>(readFileSync(path, 'utf8').trim());
    if (claims.iss === operator.getPublicKey()) systemAccount = claims.nats.system_account;
  } catch (err) {
    throw new CliError('error', `${path}: not the operator's JWT (${(err as Error).message})`, {
      cause: err,
    });
  }
  if (!systemAccount)
    throw new CliError('error', `${path}: no system account signed by ${secretsFiles.operatorSeed}`);
  return { operator, account, systemAccount };
}
