import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';
import { readVcmmd, vcmmRegister } from '../src/vcmmd/cli.ts';

/**
 * A node agent runs the steps of different migrations side by side, so the emulated tools of different CTs run at
 * once on one node. What one node keeps for all its CTs (vcmmd's registrations, the CTs' states) must come out of
 * that as it would on a real host: vcmmd is one daemon taking one request at a time, and criu reads the kernel.
 */
describe('emulated tools of different CTs at once on one node', () => {
  let c: EmulatedCluster;
  before(async () => {
    c = createEmulatedCluster();
    await c.addNode('node-a');
  });
  after(() => c?.destroy());

  it("vcmmdctl: every CT's registration removed at the same moment, none is lost or comes back", async () => {
    // Given twenty-four CTs registered with node-a's vcmmd
    const env = c.emuEnv('node-a');
    const ctids = Array.from({ length: 24 }, (_, i) => String(201 + i));
    for (const ctid of ctids) vcmmRegister(env, ctid, 256 << 20);
    assert.deepEqual(Object.keys(readVcmmd(env)).sort(), ctids);

    // When each is unregistered by a vcmmdctl of its own, all at once
    await Promise.all(ctids.map((ctid) => c.ok('node-a', 'vcmmdctl', ['unregister', ctid])));

    // Then none is left (each tool read, changed and wrote the registrations under the node's lock)
    assert.deepEqual(readVcmmd(env), {});
  });

  it("criu: another CT's state being written (its temporary file) is no CT, and no reason to fail", async () => {
    // Given node-a's CT states with a half-written one beside them, as a vzctl of CT 102 leaves it for a moment
    const cts = join(c.nodeRoot('node-a'), 'var', 'lib', 'haul-emu', 'cts');
    mkdirSync(cts, { recursive: true });
    writeFileSync(join(cts, '102.json.tmp'), '{"pid":');
    const images = join(c.dir, 'images');
    mkdirSync(images, { recursive: true });

    // When criu is asked to dump a task no CT of the node runs
    const r = await c.run('node-a', 'criu', ['pre-dump', '-t', '4194000', '-D', images]);

    // Then it says there is no such task, as criu does, and is not an emulator's internal error
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /Can't find task 4194000/);
  });
});
