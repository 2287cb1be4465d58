import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
// The nkey text codec (base32, prefix byte, CRC-16): nkeys exports no other way to reach a key's raw bytes.
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { NKeysError, NKeysErrorCode, Prefix } from '@nats-io/nkeys';

/*
 * An nkey seed's Ed25519 key, derived by OpenSSL (node:crypto) instead of nkeys' pure-JavaScript tweetnacl.
 *
 * The keys and signatures are the same (RFC 8032: the seed is the private key, Ed25519 signatures are deterministic),
 * but tweetnacl is slow to start: in a fresh process, its first public key took about 35 ms and its first signature
 * 11-16 ms on this project's 2-core machine. Every service, every CLI call and every test process paid that once or
 * more when logging in to NATS. OpenSSL takes well under a millisecond. nkeys still parses and checks the seed's text.
 */

/** PKCS #8 for an Ed25519 private key (RFC 8410): this prefix, then the 32-byte seed. */
const pkcs8Prefix = Buffer.from('302e020100300506032b657004220420', 'hex');
const dec = new TextDecoder();

/** A seed's private key for OpenSSL and its public nkey (`U…` for a user seed). */
export type SeedKey = { key: KeyObject; publicKey: string };

/**
 * The key of an nkey seed's text (`SU…`); throws nkeys' error when the text is not a valid Ed25519 seed: a bad CRC or
 * prefix, or a payload that is not 32 bytes (OpenSSL would read the first 32 and ignore the rest), which nkeys'
 * fromSeed(…).getPublicKey() refuses too; and a curve (X25519) seed, which encrypts and signs nothing.
 */
export function seedKeyOf(seed: Uint8Array): SeedKey {
  const { buf, prefix } = Codec.decodeSeed(seed);
  if (buf.length !== 32) throw new NKeysError(NKeysErrorCode.InvalidSeedLen);
  if (prefix === Prefix.Curve) throw new NKeysError(NKeysErrorCode.InvalidPrefixByte);
  const key = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, buf]), format: 'der', type: 'pkcs8' });
  const x = Buffer.from(createPublicKey(key).export({ format: 'jwk' }).x!, 'base64url');
  return { key, publicKey: dec.decode(Codec.encode(prefix, x)) };
}

/**
 * What NATS asks of an nkey at login: the public key and the server's nonce signed with it, in standard base64 (as
 * nats.js's nkeyAuthenticator answers: `nkeys.encode` is `btoa`); with the user JWT when there is one (jwtAuthenticator).
 */
export function natsAuthenticator(
  k: SeedKey,
  jwt?: string,
): (nonce?: string) => { nkey: string; sig: string; jwt?: string } {
  return (nonce) => {
    const sig = nonce ? sign(null, Buffer.from(nonce, 'utf8'), k.key).toString('base64') : '';
    return jwt === undefined ? { nkey: k.publicKey, sig } : { jwt, nkey: k.publicKey, sig };
  };
}
