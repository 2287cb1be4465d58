import { readFileSync } from 'node:fs';
import { fromPublic, fromSeed, type KeyPair } from '@nats-io/nkeys';
import { TrustConfigError, type Identity, type Registry } from './registry.ts';

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

/** Sign a message with a key pair. */
export function signWith(kp: KeyPair, subject: string, body: Uint8Array): SignatureHeaders {
  const sig = kp.sign(signedBytes(subject, body));
  return {
    [signatureHeaders.signer]: kp.getPublicKey(),
    [signatureHeaders.signature]: Buffer.from(sig).toString('base64url'),
  };
}

const publicKeys = new Map<string, KeyPair>();
const publicPair = (key: string): KeyPair => {
  let kp = publicKeys.get(key);
  if (!kp) publicKeys.set(key, (kp = fromPublic(key)));
  return kp;
};

/** Who signed this message, if it is signed by a registered identity with a signature over exactly these bytes. */
export function verifyWith(
  registry: Registry,
  subject: string,
  body: Uint8Array,
  headers: HeaderReader | undefined,
): Verdict {
  const signer = headers?.get(signatureHeaders.signer) ?? '';
  const signature = headers?.get(signatureHeaders.signature) ?? '';
  if (!signer || !signature) return { ok: false, reason: 'unsigned' };
  const identity = registry.byKey.get(signer);
  if (!identity) return { ok: false, reason: 'signed by a key the registry does not know', claimed: signer };
  const sig = Buffer.from(signature, 'base64url');
  // Ed25519 signatures are 64 bytes; anything else is not worth asking the library about.
  if (sig.length !== 64 || !publicPair(signer).verify(signedBytes(subject, body), sig))
    return { ok: false, reason: 'the signature does not match the subject and body', claimed: identity.name };
  return { ok: true, identity };
}

/** A signer's key pair from its seed file (HAUL_NKEY_SEED_FILE, the .nk file holding SU...). */
export function loadSeed(file: string): KeyPair {
  let seed: string;
  try {
    seed = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new TrustConfigError('HAUL_NKEY_SEED_FILE', `cannot read ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (!seed.startsWith('SU'))
    throw new TrustConfigError('HAUL_NKEY_SEED_FILE', `${file} does not hold an nkey user seed (SU...)`);
  try {
    return fromSeed(enc.encode(seed));
  } catch (err) {
    throw new TrustConfigError('HAUL_NKEY_SEED_FILE', `${file}: not a valid nkey seed`, { cause: err });
  }
}
