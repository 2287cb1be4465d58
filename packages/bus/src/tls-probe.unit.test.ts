import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTlsAlert, serverAddress } from './tls-probe.ts';

describe('the TLS probe of a refused client certificate', () => {
  it('reads a server URL as nats.js does: nats://, tls:// or host:port, port 4222 by default', () => {
    assert.deepEqual(serverAddress('nats://127.0.0.1:4333'), { host: '127.0.0.1', port: 4333 });
    assert.deepEqual(serverAddress('tls://nats-1.example.net'), { host: 'nats-1.example.net', port: 4222 });
    assert.deepEqual(serverAddress('nats-2.example.net:14222'), { host: 'nats-2.example.net', port: 14222 });
    assert.deepEqual(serverAddress('[::1]:4222'), { host: '::1', port: 4222 });
  });

  it('tells an alert the server sent from a certificate this end refused or a reset', () => {
    assert.ok(isTlsAlert('ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE'));
    assert.ok(isTlsAlert('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'));
    assert.ok(isTlsAlert('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'));
    for (const code of [
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'ERR_TLS_CERT_ALTNAME_INVALID',
      'ECONNRESET',
      undefined,
    ])
      assert.ok(!isTlsAlert(code), String(code));
  });
});
