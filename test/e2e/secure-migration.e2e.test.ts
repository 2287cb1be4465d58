import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import { runHaul, startRunningWorld, type World } from '@haul/test';

/** The ops CLI as one identity of the secure world. */
const haulAs = (w: World, identity: string, args: string[]) => runHaul(args, { env: w.envAs(identity) });

/**
 * A live migration where every service runs as its own identity, with the least-privilege permissions and TLS of
 * `haul init-cluster`: what haul does needs nothing more than the permission table grants.
 */
describe('a live migration in a secure cluster', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ secure: true, sharedDisks: 1, memoryMb: 16 });
  });
  after(() => w?.stop());

  it('completes, with every invariant holding', async () => {
    const base = await w.baseline('node-a');
    const r = await w.migrate(`secure-${Date.now()}`);
    assert.ok(r.ok, JSON.stringify(r));
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
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
    assert.equal(cancel.code, 1);
    assert.match(cancel.err, /Permissions Violation for Publish to "haul\.api\.cancel"/);
  });
});
