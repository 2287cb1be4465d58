import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import { createUser, fromSeed, type KeyPair } from '@nats-io/nkeys';
import type { NatsConnection } from '@nats-io/transport-node';
import { executorServices, type MigrationEvent, type StepCommand } from '@haul/schemas';
import {
  createTrust,
  identityEnv,
  identityName,
  parseRegistry,
  readIdentityFile,
  type IdentitySetting,
  type Logger,
  type Role,
  type Trust,
} from '@haul/bus';
import { removeOnExit } from './reaper.ts';

/**
 * A cluster's keys for a test, made in its temp folder the way `haul init-cluster` lays them out (common to issue
 * 12): DIR/<name>.nk (the nkey seed, 0600) and DIR/identities.json (the public registry). Built here with nkeys
 * directly so that the harness depends on no other part of haul.
 */
export type TestIdentities = {
  dir: string;
  registryFile: string;
  names: string[];
  /** The identity's file: its nkey seed file, or its .creds file in a folder made with `--auth jwt`. */
  seedFile(name: string): string;
  /** This identity's trust, in this process (signs as it; verifies against the registry). */
  trust(name: string, log?: Logger): Trust;
  /** What a service started as this identity gets in its environment. */
  env(name: string): Record<string, string>;
};

export function createTestIdentities(
  dir: string,
  nodes: readonly string[],
  cluster = 'haul-test',
): TestIdentities {
  mkdirSync(dir, { recursive: true });
  const wanted: { role: Role; node?: string }[] = [
    { role: 'coordinator' },
    { role: 'scheduler' },
    { role: 'ops' },
    ...nodes.flatMap((node) => [
      { role: 'agent' as const, node },
      { role: 'streamer' as const, node },
    ]),
  ];
  const identities = wanted.map(({ role, node }) => {
    const name = identityName(role, node);
    const kp = createUser();
    writeFileSync(join(dir, `${name}.nk`), new TextDecoder().decode(kp.getSeed()), { mode: 0o600 });
    return { name, role, ...(node ? { node } : {}), publicKey: kp.getPublicKey() };
  });
  writeFileSync(join(dir, 'identities.json'), JSON.stringify({ cluster, identities }, null, 2), {
    mode: 0o644,
  });
  return loadTestIdentities(dir);
}

/**
 * An identity's file in a folder `haul init-cluster` made: <name>.creds (`--auth jwt`) or <name>.nk, and the setting
 * that names it.
 */
export function identityFileIn(dir: string, name: string): { file: string; setting: IdentitySetting } {
  const creds = join(dir, `${name}.creds`);
  return existsSync(creds)
    ? { file: creds, setting: 'credsFile' }
    : { file: join(dir, `${name}.nk`), setting: 'nkeySeedFile' };
}

/**
 * The keys of a folder laid out as `haul init-cluster` makes it (identities.json and one <name>.nk, or with `--auth
 * jwt` one <name>.creds, per identity).
 */
export function loadTestIdentities(dir: string): TestIdentities {
  const registryFile = join(dir, 'identities.json');
  const registry = parseRegistry(JSON.parse(readFileSync(registryFile, 'utf8')) as unknown);
  const files = new Map(registry.identities.map((i) => [i.name, identityFileIn(dir, i.name)]));
  const pairs = new Map<string, KeyPair>(
    [...files].map(([name, f]) => [
      name,
      fromSeed(new TextEncoder().encode(readIdentityFile(f.file, f.setting).seed)),
    ]),
  );
  const fileOf = (name: string) => files.get(name) ?? assertKnown(name);
  return {
    dir,
    registryFile,
    names: [...pairs.keys()],
    seedFile: (name) => fileOf(name).file,
    trust: (name, log) => createTrust(registry, pairs.get(name) ?? assertKnown(name), log),
    env: (name) => {
      const f = fileOf(name);
      return { [identityEnv[f.setting]]: f.file, HAUL_IDENTITIES_FILE: registryFile };
    },
  };
}

function assertKnown(name: string): never {
  throw new Error(`no identity ${name} in this test cluster`);
}

/** Keys for a test that needs no world: in a fresh temp folder, for node-a and node-b unless told. */
export function tempIdentities(nodes: readonly string[] = ['node-a', 'node-b']): TestIdentities {
  const dir = mkdtempSync(join(tmpdir(), 'haul-keys-'));
  removeOnExit(dir); // when the test process exits: its seeds are read until then
  return createTestIdentities(dir, nodes);
}

/**
 * The StepIntended the coordinator appends before it sends `cmd`: a test that sends a command without a coordinator
 * appends it first (signed as the coordinator), since an executor runs only commands its log intends.
 */
export function stepIntended(cmd: StepCommand): MigrationEvent {
  return {
    eventId: `${cmd.commandId}:intent`,
    migrationId: cmd.migrationId,
    type: 'StepIntended',
    actor: { service: 'coordinator', node: 'coordinator' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: cmd,
  };
}

/** The coordinator gives a command up: its step timed out (HAUL_STEP_TIMEOUT, the outcome it appends then). */
export function stepTimedOut(cmd: StepCommand): MigrationEvent {
  return {
    eventId: `${cmd.commandId}:result`,
    migrationId: cmd.migrationId,
    type: 'StepFailed',
    actor: { service: 'coordinator', node: 'coordinator' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: {
      commandId: cmd.commandId,
      step: cmd.step,
      node: cmd.node,
      attempt: cmd.attempt,
      error: { code: 'HAUL_STEP_TIMEOUT', message: 'timed out (test)' },
    },
  };
}

/** The command's executor ran it: its StepSucceeded (`result` as the step's, or empty). */
export function stepSucceeded(cmd: StepCommand, result: unknown = { actions: [] }): MigrationEvent {
  return {
    eventId: `${cmd.commandId}:result`,
    migrationId: cmd.migrationId,
    type: 'StepSucceeded',
    actor: { service: executorServices[cmd.executor], node: cmd.node },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: { commandId: cmd.commandId, step: cmd.step, node: cmd.node, attempt: cmd.attempt, result },
  } as MigrationEvent;
}

/** A migration's end by rollback, as the coordinator appends it (`reason` says why). */
export function migrationRolledBack(migrationId: string, reason: string): MigrationEvent {
  return {
    eventId: `${migrationId}:rolled-back`,
    migrationId,
    type: 'MigrationRolledBack',
    actor: { service: 'coordinator', node: 'coordinator' },
    time: new Date().toISOString(),
    schemaVersion: 1,
    data: { reason, stats: { totalMs: 1, iterations: [] } },
  };
}

/**
 * Publish raw bytes into a stream as `trust` signs them (or unsigned, with no trust): what a service with that
 * identity — or anyone on the bus — can put there, whatever the body says.
 */
export async function publishAs(
  nc: NatsConnection,
  trust: Pick<Trust, 'sign'> | undefined,
  subject: string,
  body: Uint8Array,
  msgID?: string,
): Promise<{ seq: number; duplicate: boolean }> {
  const signature = trust?.sign(subject, body);
  const h = signature ? headers() : undefined;
  for (const [k, v] of Object.entries(signature ?? {})) h?.set(k, v);
  return jetstream(nc).publish(subject, body, { ...(msgID ? { msgID } : {}), ...(h ? { headers: h } : {}) });
}
