import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { BusConfigError, busConfigFromEnv, connectBus, type BusConfig } from '@haul/bus';
import {
  createTestSecrets,
  secretsEnv,
  startNatsServer,
  type NatsServer,
  type TestSecrets,
} from '@haul/test';

/**
 * Mutual TLS to nats-server: the configuration `haul init-cluster` writes verifies every client's certificate
 * against the cluster CA (`tls { verify: true }`), and a client without one, or with one of another CA, is refused
 * at once with a BusConfigError that names the setting, not after nats.js's connect timeout.
 */
const run = promisify(execFile);
let secrets: TestSecrets;
let server: NatsServer;
const open: NatsConnection[] = [];

/** The bus configuration of `identity` on the test server, with `env` over its secrets (undefined: left out). */
function configAs(identity: string, env: Record<string, string | undefined> = {}): BusConfig {
  const all: Record<string, string | undefined> = {
    HAUL_NATS_URL: server.url,
    ...secretsEnv(secrets.dir, identity),
    ...env,
  };
  return busConfigFromEnv(
    identity,
    Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)),
  );
}

/** A self-signed CA of its own and a client certificate it signed, in `dir`. */
async function foreignClientCertificate(dir: string): Promise<{ cert: string; key: string }> {
  await mkdir(dir);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(
    'openssl',
    ['req', '-x509', ...ec, '-subj', '/CN=other CA', '-keyout', 'ca-key.pem', '-out', 'ca.pem'],
    {
      cwd: dir,
    },
  );
  await run('openssl', ['req', '-new', ...ec, '-subj', '/CN=ops', '-keyout', 'key.pem', '-out', 'csr.pem'], {
    cwd: dir,
  });
  await run(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      'csr.pem',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-set_serial',
      '7',
      '-out',
      'cert.pem',
    ],
    { cwd: dir },
  );
  return { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/**
 * A refusal is final: the connect does not go on retrying (the services reconnect forever once connected). A refusal
 * takes one handshake and, after a reset, one probe (well under a second alone); the bound is a retry loop's, far above
 * a busy machine's handshakes.
 */
const refusedWithin = 15_000;

/** How long a refused connect took, and its error. */
async function refused(cfg: BusConfig): Promise<{ ms: number; err: unknown }> {
  const t0 = Date.now();
  const err = await connectBus(cfg).then(
    async (nc) => {
      await nc.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  return { ms: Date.now() - t0, err };
}

before(async () => {
  secrets = await createTestSecrets(['node-a']);
  server = await startNatsServer({ secrets: secrets.dir });
});
after(async () => {
  for (const nc of open) await nc.close();
  await server?.stop();
  await secrets?.remove();
});

describe('mutual TLS to nats-server', () => {
  it('the generated configuration verifies clients against the cluster CA, and the server says so in its INFO', async () => {
    const conf = await readFile(join(secrets.dir, 'nats-server.conf'), 'utf8');
    assert.match(conf, new RegExp(`tls \\{[^}]*ca_file: "${join(secrets.dir, 'ca.pem')}"\\s+verify: true`));
    const nc = await connectBus(configAs('ops'));
    open.push(nc);
    assert.equal(nc.info?.tls_verify, true);
  });

  it(
    'a client with its identity certificate, signed by the cluster CA, connects and works, and reconnects after a server restart',
    { timeout: 30_000 },
    async () => {
      const cfg = configAs('agent@node-a');
      assert.deepEqual(cfg.tlsClient, {
        certFile: join(secrets.dir, 'agent@node-a-cert.pem'),
        keyFile: join(secrets.dir, 'agent@node-a-key.pem'),
      });
      const nc = await connectBus(cfg);
      open.push(nc);
      await nc.flush();
      // The first connect does not reconnect (connection.ts): once connected, it does.
      const reconnected = (async () => {
        for await (const s of nc.status()) if (s.type === 'reconnect') return true;
        return false;
      })();
      await server.kill('SIGKILL');
      await server.restart();
      assert.equal(await reconnected, true);
      await nc.flush();
    },
  );

  it('a streamer presents the same certificate to nats-server as on its data connections', async () => {
    const nc = await connectBus(configAs('streamer@node-a'));
    open.push(nc);
    await nc.flush();
  });

  it('a client without a certificate is refused at once, with the settings it lacks named', async () => {
    const { ms, err } = await refused(
      configAs('ops', { HAUL_NATS_TLS_CERT_FILE: undefined, HAUL_NATS_TLS_KEY_FILE: undefined }),
    );
    assert.ok(err instanceof BusConfigError, String(err));
    assert.match(err.message, /requires a client certificate/);
    assert.match(err.message, /nats\.tls\.certFile and nats\.tls\.keyFile/);
    assert.match(err.message, /HAUL_NATS_TLS_CERT_FILE, HAUL_NATS_TLS_KEY_FILE/);
    assert.ok(ms < refusedWithin, `refused after ${ms} ms`);
  });

  it('a client certificate signed by another CA is refused, each time, with the file named', async () => {
    const other = await foreignClientCertificate(join(secrets.dir, '..', 'other-ca'));
    const cfg = configAs('ops', { HAUL_NATS_TLS_CERT_FILE: other.cert, HAUL_NATS_TLS_KEY_FILE: other.key });
    // The server's alert or a reset before it (tls-probe.ts): either way the same refusal.
    for (let i = 0; i < 5; i++) {
      const { ms, err } = await refused(cfg);
      assert.ok(err instanceof BusConfigError, String(err));
      assert.match(err.message, /refused the client certificate/);
      assert.ok(err.message.includes(other.cert), err.message);
      assert.match(err.message, /nats\.tls\.certFile, HAUL_NATS_TLS_CERT_FILE/);
      assert.ok(ms < refusedWithin, `refused after ${ms} ms`);
    }
  });
});
