import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identityEnv, type IdentitiesFile } from '@haul/bus';
import { initCluster, type ClusterAuth } from '@haul/cli';
import { identityFileIn } from './identities.ts';
import { removeOnExit } from './reaper.ts';

export type TestSecrets = { dir: string; registry: IdentitiesFile; remove(): Promise<void> };

/**
 * A cluster's secrets folder as `haul init-cluster` makes it, in a temporary folder (remove() deletes it); `auth` as
 * its --auth (nkey users, or operator mode with .creds files).
 */
export async function createTestSecrets(
  nodes: string[] = ['node-a', 'node-b'],
  auth: ClusterAuth = 'nkey',
): Promise<TestSecrets> {
  const parent = await mkdtemp(join(tmpdir(), 'haul-secrets-'));
  const forgetIt = removeOnExit(parent); // private keys: never left behind, however the process ends
  const dir = join(parent, 'secrets');
  const registry = await initCluster({ nodes, out: dir, cluster: 'test', auth });
  return {
    dir,
    registry,
    remove: async () => {
      await rm(parent, { recursive: true, force: true });
      forgetIt();
    },
  };
}

/** A cluster's secrets that a world shares with the other worlds of its test process: read, never changed. */
export type SharedTestSecrets = Readonly<Pick<TestSecrets, 'dir' | 'registry'>>;

/** Each test process's secrets folders by their nodes and login mode (worldSecrets), made at their first use. */
const made = new Map<string, Promise<SharedTestSecrets>>();

/**
 * A cluster's secrets for a world that only reads them (startWorld): one folder per test process for the same nodes
 * and login mode, made by its first world and removed when the process exits (so its private keys stay until then,
 * not until the world stops). `haul init-cluster` took 0.9-1.2 CPU-s a call here (for two nodes: its 17 openssl
 * processes, its Ed25519 and nkey keys), a quarter to a third of a world's start, and the e2e tier made about 36 of
 * them. Nothing removes it before the exit: a later world may still use it. A test that changes its cluster's secrets
 * (a rotated key) makes its own with createTestSecrets.
 */
export function worldSecrets(nodes: string[], auth: ClusterAuth = 'nkey'): Promise<SharedTestSecrets> {
  const key = JSON.stringify([nodes, auth]);
  let secrets = made.get(key);
  if (!secrets) {
    // createTestSecrets removes the folder when the process exits, however it ends.
    secrets = createTestSecrets(nodes, auth).then(({ dir, registry }) =>
      Object.freeze({ dir, registry: Object.freeze(registry) }),
    );
    // A failed making is not kept: the next world tries again and reports its own failure.
    secrets.catch(() => made.delete(key));
    made.set(key, secrets);
  }
  return secrets;
}

/**
 * The environment a service or the CLI needs to connect as `identity` (e.g. `agent@node-a`) to a secure server (its
 * nkey seed file or .creds file, the cluster CA and its client certificate: the server verifies clients), and to sign and verify with the
 * cluster's registry.
 */
export function secretsEnv(dir: string, identity: string): Record<string, string> {
  const id = identityFileIn(dir, identity);
  return {
    [identityEnv[id.setting]]: id.file,
    HAUL_IDENTITIES_FILE: join(dir, 'identities.json'),
    HAUL_TLS_CA_FILE: join(dir, 'ca.pem'),
    ...natsClientCertEnv(dir, identity),
  };
}

/** The client certificate `identity` presents to nats-server (`tls { verify: true }`), as `haul init-cluster` made it. */
export function natsClientCertEnv(dir: string, identity: string): Record<string, string> {
  return {
    HAUL_NATS_TLS_CERT_FILE: join(dir, `${identity}-cert.pem`),
    HAUL_NATS_TLS_KEY_FILE: join(dir, `${identity}-key.pem`),
  };
}

/** The environment of a node's image streamer for mutual TLS on its data connections (its node certificate). */
export function streamerTlsEnv(dir: string, node: string): Record<string, string> {
  return {
    HAUL_TLS_CERT_FILE: join(dir, `streamer@${node}-cert.pem`),
    HAUL_TLS_KEY_FILE: join(dir, `streamer@${node}-key.pem`),
    HAUL_TLS_CA_FILE: join(dir, 'ca.pem'),
  };
}

/**
 * How a test's cluster logs in: `nkey` unless HAUL_TEST_AUTH=jwt. A suite that must hold in both modes (the
 * permission matrix, key rotation) has a companion file that sets it and imports the suite: each test file runs in
 * its own process, so the setting reaches that file alone.
 */
export function testAuth(env: NodeJS.ProcessEnv = process.env): ClusterAuth {
  const v = env['HAUL_TEST_AUTH'];
  if (v === undefined || v === 'nkey') return 'nkey';
  if (v === 'jwt') return 'jwt';
  throw new Error(`HAUL_TEST_AUTH=${v}: nkey or jwt`);
}
