import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { followToEnd } from '@haul/cli';
import { startRunningWorld, type World } from '@haul/test';

/**
 * A CT whose local root disk holds LOCAL_DISK_MB of data (LOCAL_DISK_MB_WITH_SHARED beside a shared disk) and is
 * written all the time (blocks sit in the page cache for the kernel's 30 s before writeback) migrates live: the disk
 * is copied in passes while the CT runs, and only the last pass — the blocks written since the pass before, after a
 * sync — is in the frozen window. Each run reports its passes and its frozen time as test diagnostics (the figures
 * of docs/decisions.md; `npm run demo -- --local-disk-mb 1024` shows them too): the first pass, the whole disk, is
 * what one copy inside the window would cost.
 */
const LOCAL_DISK_MB = 1024;
/**
 * With a shared disk too, the local disk is smaller: that run is about the passes beside the shared disk's snapshot
 * dance, and the 1 GiB run above already shows what the disk's size does to the passes.
 */
const LOCAL_DISK_MB_WITH_SHARED = 256;

type Pass = { key: string; frozen: boolean; bytes: number; durationMs: number };

function passesOf(events: MigrationEvent[]): Pass[] {
  const out: Pass[] = [];
  for (const e of events) {
    if (e.type !== 'StepSucceeded' || e.data.step !== 'copyLocalDisk') continue;
    const subject = e.data.commandId.split(':').at(-2)!;
    const r = e.data.result;
    out.push({
      key: `copyLocalDisk:${subject}`,
      frozen: !subject.includes('.'),
      bytes: r.bytes,
      durationMs: r.durationMs,
    });
  }
  return out;
}

async function migrateLive(w: World) {
  const base = await w.baseline('node-a');
  const r = await w.api.migrate({
    requestId: `local-disk-${Date.now()}`,
    ctid: w.ctid,
    source: 'node-a',
    target: 'node-b',
    ...(w.shared.length ? { sharedDisks: w.shared } : {}),
  });
  assert.ok(r.ok, JSON.stringify(r));
  if (!r.ok) throw new Error('rejected');
  const end = await followToEnd(w.eventLog, r.migrationId, () => {});
  if (end.type !== 'MigrationCompleted')
    for (const name of ['streamer-node-a', 'streamer-node-b'])
      console.error(`--- ${name}\n${w.services.get(name)?.lines.slice(-30).join('\n')}`);
  return { id: r.migrationId, end, base, events: await w.events(r.migrationId) };
}

for (const [sharedDisks, diskMb] of [
  [0, LOCAL_DISK_MB],
  [1, LOCAL_DISK_MB_WITH_SHARED],
] as const)
  describe(`a live migration with a ${diskMb} MiB local disk being written, ${sharedDisks} shared disk(s)`, () => {
    let w: World;
    before(async () => {
      w = await startRunningWorld({ sharedDisks, memoryMb: 16, diskWrites: 100, localDiskMb: diskMb });
    });
    after(() => w?.stop());

    it('the local disk on the target equals the source at the freeze; the frozen window holds only the last pass', async (t) => {
      const { id, end, base, events } = await migrateLive(w);
      assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
      assert.deepEqual(await w.brokenInvariants(id, base), []);
      const passes = passesOf(events);
      const live = passes.filter((p) => !p.frozen);
      const frozen = passes.filter((p) => p.frozen);
      assert.equal(frozen.length, 1, JSON.stringify(passes));
      assert.ok(live.length >= 2, JSON.stringify(passes));
      assert.ok(
        live[0]!.bytes >= diskMb * 1024 * 1024,
        `the first pass sends the whole disk: ${live[0]!.bytes}`,
      );
      assert.ok(
        frozen[0]!.bytes < live[0]!.bytes / 20,
        `the frozen pass sends what was written since: ${JSON.stringify(passes)}`,
      );
      // Every live pass ended before the freeze was intended; the frozen pass is the only one in the window.
      const keys = events.flatMap((e) =>
        e.type === 'StepIntended' ? [`${e.data.step}:${e.data.commandId.split(':').at(-2)}`] : [],
      );
      const freezeAt = events.findIndex((e) => e.type === 'StepIntended' && e.data.step === 'finalDump');
      for (const p of live) {
        const done = events.findIndex(
          (e) =>
            e.type === 'StepSucceeded' &&
            e.data.step === 'copyLocalDisk' &&
            e.data.commandId.includes(`:${p.key.split(':')[1]}:`),
        );
        assert.ok(done < freezeAt, `${p.key} ended before the freeze (${keys.join(' ')})`);
      }
      const stats = end.type === 'MigrationCompleted' ? end.data.stats : undefined;
      const fmt = (p: Pass) => `${p.key} ${(p.bytes / 1048576).toFixed(1)} MiB in ${p.durationMs} ms`;
      t.diagnostic(`passes: ${passes.map(fmt).join('; ')}`);
      t.diagnostic(
        `frozen ${stats?.frozenMs} ms, downtime ${stats?.downtimeMs} ms, total ${stats?.totalMs} ms; ` +
          `the whole disk in one pass took ${live[0]!.durationMs} ms`,
      );
      const window = stats?.downtimeWindow;
      const inWindow = window?.steps.filter((s) => s.key.startsWith('copyLocalDisk')).map((s) => s.key);
      assert.deepEqual(inWindow, ['copyLocalDisk:0']);
    });
  });
