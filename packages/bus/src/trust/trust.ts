import type { KeyPair } from '@nats-io/nkeys';
import type { Logger } from '../logger.ts';
import { identityEnv, identityFileOf, IdentityFileError, type IdentitySetting } from '../identity-file.ts';
import {
  TrustConfigError,
  identityName,
  loadRegistry,
  type Identity,
  type Registry,
  type Role,
} from './registry.ts';
import {
  loadSeed,
  publicKeyOfPair,
  signWith,
  verifyWith,
  verifyWithAsync,
  claimedWith,
  signerBelievedWith,
  type HeaderReader,
  type SignatureHeaders,
  type Verdict,
} from './signature.ts';

/** A message a service refused to believe: logged (warn), counted, and otherwise ignored. */
export type Rejection = {
  kind: 'event' | 'command';
  subject: string;
  seq?: number;
  /** Who the message says it comes from: the registered signer, its key, or the actor its body names. */
  claimed?: string;
  reason: string;
};

/** A signature's verdict as a process's trust gives it: when insecure, always ok, with no identity. */
export type TrustVerdict = Verdict | { ok: true; identity?: undefined };

/**
 * A process's trust: its signer (if it signs), the cluster's registry, and its record of refused messages.
 * `secure: false` only under HAUL_INSECURE=1: nothing is signed and every message is believed.
 */
export type Trust = {
  readonly secure: boolean;
  /** The identity this process signs as (none for a reader such as the CLI, or when insecure). */
  readonly identity: Identity | undefined;
  readonly registry: Registry | undefined;
  /** Headers for a message on `subject` with this body; none when insecure. Throws when this process has no key. */
  sign(subject: string, body: Uint8Array): SignatureHeaders | undefined;
  /**
   * Who signed it, or why it is not believed. Always ok (with no identity) when insecure. `eventSeq`: its sequence in
   * the event stream, for a message read from there and only then (a retired key vouches for nothing else).
   */
  verify(
    subject: string,
    body: Uint8Array,
    headers: HeaderReader | undefined,
    eventSeq?: number,
  ): TrustVerdict;
  /** verify, with the Ed25519 check on libuv's thread pool: the same verdict, the caller's thread free meanwhile. */
  verifyAsync(
    subject: string,
    body: Uint8Array,
    headers: HeaderReader | undefined,
    eventSeq?: number,
  ): Promise<TrustVerdict>;
  /**
   * Who a message says signed it, by the registry and its retired-key rule, without checking the signature: for an
   * event a believed seal vouches for (seal.ts). Always ok (with no identity) when insecure.
   */
  claimed(headers: HeaderReader | undefined, eventSeq: number): TrustVerdict;
  /**
   * Whether a message of the event stream at `eventSeq` signed by this public key (its signature good) would be
   * believed, by the registry and its retired-key rule: for a seal that names its messages' signers, taken without
   * reading them (EventJudge.sealAlone). Always ok (with no identity) when insecure.
   */
  signerBelieved(publicKey: string, eventSeq: number): TrustVerdict;
  /** Record a refused message: one warning and one count per message (a message read again is not counted again). */
  reject(r: Rejection): void;
  /** Refused messages so far (discovery stats: rejectedMessages). */
  readonly rejections: number;
};

/**
 * Stored messages remembered as already reported, so re-reading a log (or a redelivery) does not count a forgery
 * again; oldest forgotten. A message that was never stored (a core request: an API call, an inspection, an offer)
 * has no sequence and is never met again: each one is counted.
 */
const rememberedRejections = 10_000;

function rejectionLog(log: Logger | undefined) {
  const seen = new Set<string>();
  let count = 0;
  return {
    get count(): number {
      return count;
    },
    reject(r: Rejection): void {
      if (r.seq !== undefined) {
        const key = `${r.kind}:${r.subject}:${r.seq}:${r.reason}`;
        if (seen.has(key)) return;
        seen.add(key);
        if (seen.size > rememberedRejections) seen.delete(seen.values().next().value!);
      }
      count++;
      log?.warn({ security: true, ...r }, `rejected ${r.kind}: ${r.reason}`);
    },
  };
}

/** Trust from a registry and, for a process that signs, its key pair. */
export function createTrust(registry: Registry, kp: KeyPair | undefined, log?: Logger): Trust {
  const publicKey = kp ? publicKeyOfPair(kp) : undefined;
  const identity = publicKey ? registry.byKey.get(publicKey) : undefined;
  const retired = publicKey ? registry.retired.get(publicKey) : undefined;
  if (retired)
    throw new TrustConfigError(
      'HAUL_NKEY_SEED_FILE',
      `its public key is ${retired.identity.name}'s retired key (haul rotate-key): use its new seed`,
    );
  if (kp && !identity)
    throw new TrustConfigError('HAUL_NKEY_SEED_FILE', 'its public key is not in the registry');
  const rejections = rejectionLog(log);
  return {
    secure: true,
    identity,
    registry,
    sign(subject, body) {
      if (!kp) throw new TrustConfigError('HAUL_NKEY_SEED_FILE', 'this process has no key to sign with');
      return signWith(kp, subject, body);
    },
    verify: (subject, body, headers, eventSeq) => verifyWith(registry, subject, body, headers, eventSeq),
    verifyAsync: (subject, body, headers, eventSeq) =>
      verifyWithAsync(registry, subject, body, headers, eventSeq),
    claimed: (headers, eventSeq) => claimedWith(registry, headers, eventSeq),
    signerBelieved: (publicKey, eventSeq) => signerBelievedWith(registry, publicKey, eventSeq),
    reject: (r) => rejections.reject(r),
    get rejections() {
      return rejections.count;
    },
  };
}

/** HAUL_INSECURE=1: no signatures made or checked. For debugging only; every start says so. */
export function insecureTrust(log?: Logger): Trust {
  const rejections = rejectionLog(log);
  return {
    secure: false,
    identity: undefined,
    registry: undefined,
    sign: () => undefined,
    verify: () => ({ ok: true }),
    verifyAsync: () => Promise.resolve({ ok: true }),
    claimed: () => ({ ok: true }),
    signerBelieved: () => ({ ok: true }),
    reject: (r) => rejections.reject(r),
    get rejections() {
      return rejections.count;
    },
  };
}

/** Who this process must be: a role (and node), or a reader that only verifies (the CLI). */
export type Expected = { role: Role; node?: string } | 'reader';

const insecureWarning =
  'HAUL_INSECURE=1: commands and events are neither signed nor verified; anyone on the bus can forge them';

/** What a process's trust is made of (a service's settings; service-config.schema.json). */
export type TrustSettings = {
  insecure: boolean;
  identitiesFile?: string | undefined;
  nkeySeedFile?: string | undefined;
  credsFile?: string | undefined;
};

/** The identity file of the settings (a seed file or a .creds file), or a TrustConfigError naming both. */
function identityOf(s: TrustSettings): { file: string; setting: IdentitySetting } | undefined {
  try {
    return identityFileOf(s);
  } catch (err) {
    if (err instanceof IdentityFileError) throw new TrustConfigError(identityEnv[err.setting], err.message);
    throw err;
  }
}

/**
 * The trust of a process: the registry (identitiesFile) and its key (nkeySeedFile), which must be registered as the
 * expected identity. Throws TrustConfigError naming what is wrong (by its environment variable).
 */
export function trustFrom(s: TrustSettings, expected: Expected, log?: Logger): Trust {
  if (s.insecure) {
    log?.warn({ security: true }, insecureWarning);
    return insecureTrust(log);
  }
  const registryFile = s.identitiesFile;
  if (!registryFile)
    throw new TrustConfigError(
      'HAUL_IDENTITIES_FILE',
      'not set (the cluster registry; HAUL_INSECURE=1 to debug without)',
    );
  const registry = loadRegistry(registryFile);
  const id = identityOf(s);
  if (expected === 'reader')
    return createTrust(registry, id ? loadSeed(id.file, id.setting) : undefined, log);
  if (!id)
    throw new TrustConfigError(
      'HAUL_NKEY_SEED_FILE',
      'not set, nor HAUL_CREDS_FILE (this service signs what it publishes)',
    );
  const kp = loadSeed(id.file, id.setting);
  const trust = createTrust(registry, kp, log);
  const want = identityName(expected.role, expected.node);
  if (trust.identity?.name !== want)
    throw new TrustConfigError(
      identityEnv[id.setting],
      `its key is registered as ${trust.identity?.name}, not ${want}`,
    );
  return trust;
}

/**
 * The trust of a process from its environment: HAUL_INSECURE=1, HAUL_IDENTITIES_FILE and HAUL_NKEY_SEED_FILE (the CLI;
 * a service reads its settings: trustFrom).
 */
export function trustFromEnv(expected: Expected, log?: Logger, env: NodeJS.ProcessEnv = process.env): Trust {
  return trustFrom(
    {
      insecure: env['HAUL_INSECURE'] === '1',
      identitiesFile: env['HAUL_IDENTITIES_FILE'] || undefined,
      nkeySeedFile: env[identityEnv.nkeySeedFile] || undefined,
      credsFile: env[identityEnv.credsFile] || undefined,
    },
    expected,
    log,
  );
}

/** trustFromEnv at a service's start: a missing or invalid setting ends the process with exit code 2. */
export function trustFromEnvOrExit(
  expected: Expected,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
): Trust {
  try {
    return trustFromEnv(expected, log, env);
  } catch (err) {
    if (!(err instanceof TrustConfigError)) throw err;
    log.fatal({ field: err.field }, `cannot start without trust: ${err.message}`);
    process.exit(2);
  }
}
