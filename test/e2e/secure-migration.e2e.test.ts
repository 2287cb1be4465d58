import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exitCodes, followToEnd } from '@haul/cli';
import { runHaul, startRunningWorld, type World } from '@haul/test';

/** A range for the streamers' data ports below the ephemeral ports; a port another test holds is skipped. */
const base = 21000 + Math.floor(Math.random() * 400) * 20;
const streamPorts = `${base}-${base + 19}`;

/** The ops CLI as one identity of the secure world. */
const haulAs = (w: World, identity: string, args: string[]) => runHaul(args, { env: w.envAs(identity) });

/**
 * A live migration where every service runs as its own identity, with the least-privilege permissions and mutual TLS
 * of `haul init-cluster` (nats-server verifies every client's certificate): what haul does needs nothing more than
 * the permission table grants. Every service starts from its config file (`--config`, as the systemd units do), with
 * no setting in its environment.
 */
describe('a live migration in a secure cluster, every service started from its config file', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({
      secure: true,
      configFiles: true,
      streamPorts,
      sharedDisks: 1,
      memoryMb: 16,
    });
  });
  after(() => w?.stop());

  it('each service read its settings from its file: its identity, the CA, its client certificate and the data port range', () => {
    const dir = w.secrets!.dir;
    const agent = JSON.parse(readFileSync(w.configFile('agent-node-a'), 'utf8')) as Record<string, unknown>;
    assert.equal(agent['node'], 'node-a');
    assert.equal(agent['nkeySeedFile'], join(dir, 'agent@node-a.nk'));
    assert.deepEqual(agent['nats'], {
      servers: [w.server.url],
      tls: {
        caFile: join(dir, 'ca.pem'),
        certFile: join(dir, 'agent@node-a-cert.pem'),
        keyFile: join(dir, 'agent@node-a-key.pem'),
      },
    });
    const streamer = JSON.parse(readFileSync(w.configFile('streamer-node-b'), 'utf8')) as {
      nats: { tls: Record<string, string> };
      data: { ports: string; tls: Record<string, string> };
    };
    assert.equal(streamer.data.ports, streamPorts);
    // One certificate for both: its client certificate to nats-server and its data connections' mutual TLS.
    assert.equal(streamer.data.tls['certFile'], join(dir, 'streamer@node-b-cert.pem'));
    assert.equal(streamer.nats.tls['certFile'], join(dir, 'streamer@node-b-cert.pem'));
  });

  it('each streamer listens on a port of the configured range', async () => {
    for (const node of ['node-a', 'node-b']) {
      const line = await w.services.get(`streamer-${node}`)!.waitForLine(/image streamer started/);
      const port = (JSON.parse(line) as { dataPort: number }).dataPort;
      assert.ok(port >= base && port <= base + 19, `${node}: ${port} not in ${streamPorts}`);
    }
  });

  it('completes, with every invariant holding', async () => {
    const base = await w.baseline('node-a');
    const r = await w.migrate(`secure-${Date.now()}`);
    assert.ok(r.ok, JSON.stringify(r));
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
  });

  it('nats-server verifies clients: the CLI without a client certificate is refused, told which settings it lacks', async () => {
    const { HAUL_NATS_TLS_CERT_FILE: _cert, HAUL_NATS_TLS_KEY_FILE: _key, ...env } = w.envAs('ops');
    const r = await runHaul(['nodes'], { env });
    assert.equal(r.code, exitCodes.usage.code, 'a setting NATS refuses, not a NATS that does not answer');
    assert.match(r.err, /requires a client certificate .*HAUL_NATS_TLS_CERT_FILE, HAUL_NATS_TLS_KEY_FILE/);
  });

  it('ops reads through the CLI and may not cancel', async () => {
    const nodes = await haulAs(w, 'ops', ['nodes']);
    assert.equal(nodes.code, 0, nodes.err);
    assert.match(nodes.out, /node-a\s+alive/);
    const ls = await haulAs(w, 'ops', ['ls', '--json']);
    assert.equal(ls.code, 0, ls.err);
    const id = (JSON.parse(ls.out.trim().split('\n')[0]!) as { migrationId: string }).migrationId;
    const events = await haulAs(w, 'ops', ['events', '--migration', id]);
    assert.equal(events.code, 0, events.err);
    assert.match(events.out, /MigrationCompleted/);
    const cancel = await haulAs(w, 'ops', ['cancel', id]);
    assert.equal(cancel.code, exitCodes.rejected.code, cancel.err);
    assert.match(
      cancel.err,
      /NATS does not let this identity publish to haul\.api\.cancel: .* need the scheduler identity/,
    );
  });
});
