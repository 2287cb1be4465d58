import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createUser } from '@nats-io/nkeys';
import { BusConfigError, busConfigFromEnv, connectBus, connectionOptions } from './connection.ts';
import { inboxPrefix } from './permissions.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-conn-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const kp = createUser();
const seedFile = join(dir, 'agent@node-a.nk');
writeFileSync(seedFile, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
const secure = { HAUL_NKEY_SEED_FILE: seedFile, HAUL_TLS_CA_FILE: join(dir, 'ca.pem') };

describe('the bus connection settings', () => {
  it('an identity: nkey authentication, its own inbox prefix, TLS verified against the cluster CA', () => {
    const opts = connectionOptions(busConfigFromEnv('node-agent@node-a', secure));
    assert.equal(typeof opts.authenticator, 'function');
    assert.equal(opts.inboxPrefix, inboxPrefix(kp.getPublicKey()));
    assert.deepEqual(opts.tls, { caFile: secure.HAUL_TLS_CA_FILE });
  });

  it("a client certificate for a server that verifies clients: the CA's file beside the certificate and key", () => {
    const cert = {
      HAUL_NATS_TLS_CERT_FILE: join(dir, 'a-cert.pem'),
      HAUL_NATS_TLS_KEY_FILE: join(dir, 'a-key.pem'),
    };
    const opts = connectionOptions(busConfigFromEnv('node-agent@node-a', { ...secure, ...cert }));
    assert.deepEqual(opts.tls, {
      caFile: secure.HAUL_TLS_CA_FILE,
      certFile: cert.HAUL_NATS_TLS_CERT_FILE,
      keyFile: cert.HAUL_NATS_TLS_KEY_FILE,
    });
  });

  it('keeps a seed out of the configuration object (it may be logged) and out of every error', () => {
    const cfg = busConfigFromEnv('x', secure);
    const seed = new TextDecoder().decode(kp.getSeed());
    assert.ok(!JSON.stringify(cfg).includes(seed));
    const bad = join(dir, 'bad.nk');
    writeFileSync(bad, 'SUnot-a-seed-at-all\n');
    assert.throws(
      () => connectionOptions(busConfigFromEnv('x', { HAUL_NKEY_SEED_FILE: bad })),
      (err: unknown) => err instanceof BusConfigError && !err.message.includes('SUnot-a-seed'),
    );
    assert.throws(
      () => connectionOptions(busConfigFromEnv('x', { HAUL_NKEY_SEED_FILE: join(dir, 'missing.nk') })),
      BusConfigError,
    );
  });

  it('user/password and token credentials still work as before', () => {
    const opts = connectionOptions(busConfigFromEnv('x', { HAUL_NATS_USER: 'u', HAUL_NATS_PASS: 'p' }));
    assert.equal(opts.user, 'u');
    assert.equal(opts.pass, 'p');
    assert.equal(connectionOptions(busConfigFromEnv('x', { HAUL_NATS_TOKEN: 't' })).token, 't');
  });

  it('HAUL_INSECURE=1 drops the identity and TLS; any other value than 1 or 0 is refused', () => {
    const opts = connectionOptions(busConfigFromEnv('x', { ...secure, HAUL_INSECURE: '1' }));
    assert.equal(opts.authenticator, undefined);
    assert.equal(opts.tls, undefined);
    assert.equal(opts.inboxPrefix, undefined);
    assert.equal(busConfigFromEnv('x', { HAUL_INSECURE: '0' }).insecure, undefined);
    assert.throws(() => busConfigFromEnv('x', { HAUL_INSECURE: 'yes' }), BusConfigError);
  });

  it('HAUL_INSECURE=1 warns at every connect', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const cfg = { ...busConfigFromEnv('x', { HAUL_INSECURE: '1' }), servers: 'nats://127.0.0.1:1' };
      for (let i = 0; i < 2; i++)
        await assert.rejects(connectBus(cfg, { maxReconnectAttempts: 0, reconnect: false }));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(warnings.filter((w) => (w as { code?: string }).code === 'HAUL_INSECURE').length, 2);
  });
});
