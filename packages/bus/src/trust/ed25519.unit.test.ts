import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jwtAuthenticator, nkeyAuthenticator } from '@nats-io/nats-core';
import { createAccount, createCurve, createUser, fromPublic, fromSeed, Prefix } from '@nats-io/nkeys';
import { Codec } from '@nats-io/nkeys/lib/codec.js';
import { natsAuthenticator, seedKeyOf } from './ed25519.ts';

const enc = new TextEncoder();

describe('an nkey seed read by OpenSSL', () => {
  it('gives the public key nkeys gives, for user and account seeds', () => {
    for (const kp of [createUser(), createUser(), createAccount()])
      assert.equal(seedKeyOf(kp.getSeed()).publicKey, kp.getPublicKey());
  });

  it('answers the login nonce exactly as nats.js does, with and without a user JWT', () => {
    const seed = createUser().getSeed();
    const k = seedKeyOf(seed);
    for (const nonce of ['ZRp9mLzU0qhKq3aG', 'a-much-longer-nonce-with-ünïcode', undefined]) {
      assert.deepEqual(natsAuthenticator(k)(nonce), nkeyAuthenticator(seed)(nonce));
      assert.deepEqual(natsAuthenticator(k, 'e.y.j')(nonce), jwtAuthenticator('e.y.j', seed)(nonce));
    }
    const { nkey, sig } = natsAuthenticator(k)('nonce-1');
    assert.ok(fromPublic(nkey).verify(enc.encode('nonce-1'), Buffer.from(sig, 'base64')));
  });

  it('refuses text that is not a seed, as nkeys does', () => {
    const pub = enc.encode(createUser().getPublicKey());
    assert.throws(() => fromSeed(pub));
    assert.throws(() => seedKeyOf(pub));
    const seed = createUser().getSeed();
    seed[10] = seed[10] === 65 ? 66 : 65; // one character changed: the CRC no longer matches
    assert.throws(() => seedKeyOf(seed));
    // A well-formed seed text whose payload is not 32 bytes: OpenSSL alone would take its first 32.
    for (const n of [31, 33, 64]) {
      const odd = Codec._encode(true, Prefix.User, new Uint8Array(n).fill(7));
      assert.throws(() => fromSeed(odd).getPublicKey());
      assert.throws(() => seedKeyOf(odd), /seed length/);
    }
    // A curve (X25519) seed encrypts; it is no identity that signs.
    assert.throws(() => seedKeyOf(createCurve().getSeed()), /prefix/);
  });
});
