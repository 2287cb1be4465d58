import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { followToEnd } from '@haul/cli';
import { startRunningWorld, type World } from '@haul/test';

/*
 * vcmmd's registration of the CT follows it: the target's vzctl restore registers it (libvzctl lib/env_nsops.c
 * 566–577), and the source's agent unregisters it after the committed dump, as libvzctl's chkpnt does
 * (lib/cr_criu.c 254–256, lib/vcmm.c 205–218) — only where the host has /usr/sbin/vcmmdctl (is_managed_by_vcmmd).
 */
describe("vcmmd's registration of a migrated CT", () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16, dirtyRate: 200 });
  });
  after(() => w?.stop());

  const registered = async (node: string) =>
    (JSON.parse(await w.cluster.ok(node, 'vcmmdctl', ['list', '-j'])) as { name: string }[]).map(
      (v) => v.name,
    );

  async function migrate(from: string, to: string): Promise<{ end: MigrationEvent; release: string[] }> {
    const r = await w.api.migrate({
      requestId: `vcmmd-${from}-${to}-${Date.now()}`,
      ctid: w.ctid,
      source: from,
      target: to,
      sharedDisks: w.shared,
    });
    assert.ok(r.ok, JSON.stringify(r));
    if (!r.ok) throw new Error('rejected');
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    const release = (await w.events(r.migrationId)).flatMap((e) =>
      e.type === 'StepSucceeded' && e.data.step === 'releaseSource'
        ? ((e.data.result as { actions?: string[] }).actions ?? [])
        : [],
    );
    return { end, release };
  }

  it('moves from the source to the target', async () => {
    assert.deepEqual(await registered('node-a'), [w.ctid]);
    assert.deepEqual(await registered('node-b'), []);
    const { end, release } = await migrate('node-a', 'node-b');
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.ok(release.includes('vcmmd: CT unregistered'), JSON.stringify(release));
    assert.deepEqual(await registered('node-a'), [], 'the source forgot the CT');
    assert.deepEqual(await registered('node-b'), [w.ctid], 'the target registered it');
  });

  it('a source without vcmmd is not asked, and the migration completes', async () => {
    const marker = join(w.cluster.nodeRoot('node-b'), 'usr', 'sbin', 'vcmmdctl');
    rmSync(marker);
    try {
      const { end, release } = await migrate('node-b', 'node-a');
      assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
      assert.ok(!release.some((a) => a.startsWith('vcmmd')), JSON.stringify(release));
      assert.deepEqual(await registered('node-a'), [w.ctid]);
    } finally {
      writeFileSync(marker, '#!/bin/sh\nexec vcmmdctl "$@"\n', { mode: 0o755 });
    }
  });
});
