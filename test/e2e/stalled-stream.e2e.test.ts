import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { streamStallMs } from '@haul/bus';
import { followToEnd } from '@haul/cli';
import { awaitEvent, withRunningWorld } from '@haul/test';

describe('a source streamer that dies in the frozen window', () => {
  it('is given up after the stall time, not the 30-minute stream timeout: the CT resumes on the source', async () => {
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16 }, async (w) => {
      const base = await w.baseline('node-a');
      const r = await w.migrate('stall-1', { preDump: 'on' });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      // The final dump is intended only once every iteration stream is done; the streamer then dies for good, so
      // the final images are never sent (the command waits in the queue, nothing reports progress).
      await awaitEvent(
        w.eventLog,
        r.migrationId,
        (e) => e.type === 'StepIntended' && e.data.step === 'finalDump',
      );
      await w.services.get('streamer-node-a')!.kill('SIGKILL');
      const killedAt = Date.now();
      const end = await followToEnd(w.eventLog, r.migrationId, () => {});
      const took = Date.now() - killedAt;
      assert.equal(end.type, 'MigrationRolledBack');
      assert.equal(end.type === 'MigrationRolledBack' && end.data.cause?.code, 'HAUL_STREAM_STALLED');
      assert.ok(took < streamStallMs + 60_000, `rolled back ${took} ms after the streamer died`);
      const events = await w.events(r.migrationId);
      const stalled = events.find(
        (e) => e.type === 'StepFailed' && e.data.error.code === 'HAUL_STREAM_STALLED',
      );
      assert.equal(stalled?.type === 'StepFailed' && stalled.data.step, 'streamImages');
      assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
    });
  });
});
