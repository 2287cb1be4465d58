import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { fromSeed, Prefix, type KeyPair } from '@nats-io/nkeys';
// The nkey text codec (base32, prefix byte, CRC-16): nkeys exports no other way to reach a key's raw bytes.
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { seedKeyOf, type SeedKey } from './ed25519.ts';
import { identityEnv, IdentityFileError, readIdentityFile, type IdentitySetting } from '../identity-file.ts';
import { retiredKeyBelieved, TrustConfigError, type Identity, type Registry } from './registry.ts';

/** The NATS headers a signed message carries (never the JSON body: the body stays what the schema says). */
export const signatureHeaders = { signer: 'Haul-Signer', signature: 'Haul-Signature' } as const;

/** What sign() returns: the two headers, by name. */
export type SignatureHeaders = Record<(typeof signatureHeaders)[keyof typeof signatureHeaders], string>;

/** Headers as a received message has them (nats.js MsgHdrs: get() answers '' when absent). */
export type HeaderReader = { get(name: string): string };

export type Verdict = { ok: true; identity: Identity } | { ok: false; reason: string; claimed?: string };

const enc = new TextEncoder();

/** The signed bytes: utf8(subject) + "\n" + body. The subject binds a command to its node and an event to its migration. */
export function signedBytes(subject: string, body: Uint8Array): Uint8Array {
  const head = enc.encode(`${subject}\n`);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

/*
 * Ed25519 itself runs in OpenSSL (node:crypto), not in nkeys' pure-JavaScript tweetnacl: the signatures are the same
 * (RFC 8032, as `nats-server` and every nkeys library make them), but tweetnacl took 8-35 ms per signature or check
 * on this project's 2-core CI machine, and each log read checks every event's signature: a node agent spent seconds
 * per command with its event loop blocked. OpenSSL takes about 0.1 ms. nkeys still parses and checks the keys' text.
 * A key pair's public key is OpenSSL's too (ed25519.ts): tweetnacl's KeyPair.getPublicKey() costs 35 ms cold.
 */

/** A key pair's private key for OpenSSL and its public nkey, made once per key pair. */
const signers = new WeakMap<KeyPair, SeedKey>();
function signerOf(kp: KeyPair): SeedKey {
  let s = signers.get(kp);
  if (!s) {
    s = seedKeyOf(kp.getSeed());
    signers.set(kp, s);
  }
  return s;
}

/** A key pair's public nkey (U… for a user), as KeyPair.getPublicKey() says it, from OpenSSL. */
export const publicKeyOfPair = (kp: KeyPair): string => signerOf(kp).publicKey;

/** A user's public key for OpenSSL, from its nkey text (U...), made once per key; undefined if it is none. */
const publicKeys = new Map<string, KeyObject | undefined>();
function publicKeyOf(nkey: string): KeyObject | undefined {
  if (publicKeys.has(nkey)) return publicKeys.get(nkey);
  let key: KeyObject | undefined;
  try {
    const x = b64url(Codec.decode(Prefix.User, enc.encode(nkey)));
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
  } catch {
    key = undefined;
  }
  publicKeys.set(nkey, key);
  return key;
}

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** Sign a message with a key pair (Ed25519 over signedBytes). */
export function signWith(kp: KeyPair, subject: string, body: Uint8Array): SignatureHeaders {
  const { key, publicKey } = signerOf(kp);
  const sig = sign(null, signedBytes(subject, body), key);
  return {
    [signatureHeaders.signer]: publicKey,
    [signatureHeaders.signature]: sig.toString('base64url'),
  };
}

/** Why a retired key does not vouch for a message: where it stops being believed, and where this message is. */
function retiredReason(name: string, eventsUpTo: number, eventSeq: number | undefined): string {
  const where = eventSeq === undefined ? 'and for no command or request' : `not at ${eventSeq}`;
  return `signed by ${name}'s retired key, believed only up to event sequence ${eventsUpTo}, ${where}`;
}

/**
 * Who signed this message, if it is signed by a registered identity with a signature over exactly these bytes.
 * `eventSeq`: the message's sequence in the event stream, for a message read from it (and nothing else): a retired
 * key is believed only for events stored up to the sequence it was retired at (retiredKeyBelieved).
 */
export function verifyWith(
  registry: Registry,
  subject: string,
  body: Uint8Array,
  headers: HeaderReader | undefined,
  eventSeq?: number,
): Verdict {
  const c = checkable(registry, subject, body, headers, eventSeq);
  if ('ok' in c) return c;
  return verdictOf(c, verify(null, c.bytes, c.key, c.sig));
}

/**
 * verifyWith, its Ed25519 check on libuv's thread pool (node:crypto's verify with a callback): the same verdict, and
 * the caller's thread free meanwhile. For a reader that checks many signatures while it reads (a replay checks a
 * seal per migration, about 130 µs each on the CI machine: 1.3 s of 10,000 migrations' replay).
 */
export function verifyWithAsync(
  registry: Registry,
  subject: string,
  body: Uint8Array,
  headers: HeaderReader | undefined,
  eventSeq?: number,
): Promise<Verdict> {
  const c = checkable(registry, subject, body, headers, eventSeq);
  if ('ok' in c) return Promise.resolve(c);
  return new Promise((resolve) =>
    verify(null, c.bytes, c.key, c.sig, (err, good) => resolve(verdictOf(c, !err && good))),
  );
}

/** A signature worth checking: its signer known to the registry, its key and its 64 bytes; or why not (a verdict). */
type Checkable = {
  claimed: { ok: true; identity: Identity };
  key: KeyObject;
  sig: Buffer;
  bytes: Uint8Array;
};

function checkable(
  registry: Registry,
  subject: string,
  body: Uint8Array,
  headers: HeaderReader | undefined,
  eventSeq: number | undefined,
): Checkable | Verdict {
  const claimed = claimedWith(registry, headers, eventSeq);
  if (!claimed.ok) return claimed;
  const sig = Buffer.from(headers!.get(signatureHeaders.signature), 'base64url');
  // Ed25519 signatures are 64 bytes; anything else is not worth asking the library about.
  const key = publicKeyOf(headers!.get(signatureHeaders.signer));
  if (sig.length !== 64 || !key) return verdictOf({ claimed }, false);
  return { claimed, key, sig, bytes: signedBytes(subject, body) };
}

function verdictOf(c: Pick<Checkable, 'claimed'>, good: boolean): Verdict {
  return good
    ? c.claimed
    : {
        ok: false,
        reason: 'the signature does not match the subject and body',
        claimed: c.claimed.identity.name,
      };
}

/**
 * Who a message says signed it, by the registry, under the same rules as verifyWith (a known key; a retired key only
 * for events stored up to its `eventsUpTo`), without checking the signature itself: for an event a believed seal
 * vouches for (seal.ts), whose signature the coordinator checked.
 */
export function claimedWith(
  registry: Registry,
  headers: HeaderReader | undefined,
  eventSeq?: number,
): Verdict {
  const signer = headers?.get(signatureHeaders.signer) ?? '';
  const signature = headers?.get(signatureHeaders.signature) ?? '';
  if (!signer || !signature) return { ok: false, reason: 'unsigned' };
  return signerBelievedWith(registry, signer, eventSeq);
}

/**
 * Whether the registry believes a message signed by this public key (its signature checked), under verifyWith's
 * rules: a known key; a retired key only for events stored up to its `eventsUpTo`.
 */
export function signerBelievedWith(registry: Registry, signer: string, eventSeq?: number): Verdict {
  const retired = registry.retired.get(signer);
  if (retired && !retiredKeyBelieved(retired.eventsUpTo, eventSeq))
    return {
      ok: false,
      reason: retiredReason(retired.identity.name, retired.eventsUpTo, eventSeq),
      claimed: retired.identity.name,
    };
  const identity = registry.byKey.get(signer) ?? retired?.identity;
  if (!identity) return { ok: false, reason: 'signed by a key the registry does not know', claimed: signer };
  return { ok: true, identity };
}

/**
 * A signer's key pair from its identity file: an nkey seed file (HAUL_NKEY_SEED_FILE, the .nk file holding SU...) or
 * a NATS .creds file (HAUL_CREDS_FILE), as `setting` names it (identity-file.ts).
 */
export function loadSeed(file: string, setting: IdentitySetting = 'nkeySeedFile'): KeyPair {
  const field = identityEnv[setting];
  let seed: string;
  try {
    seed = readIdentityFile(file, setting).seed;
  } catch (err) {
    if (err instanceof IdentityFileError) throw new TrustConfigError(field, err.message, { cause: err });
    throw err;
  }
  try {
    return fromSeed(enc.encode(seed));
  } catch (err) {
    throw new TrustConfigError(field, `${file}: not a valid nkey seed`, { cause: err });
  }
}
