import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import { awaitEvent, stepEvent, withRunningWorld } from '@haul/test';

/** The coordinator's stall time here (HAUL_STREAM_STALL_MS, the setting's lowest value; 30 s unless set). */
const stallMs = 10_000;

describe('a source streamer that dies in the frozen window', () => {
  it('is given up after the stall time, not the 30-minute stream timeout: the CT resumes on the source', async () => {
    const env = { HAUL_STREAM_STALL_MS: String(stallMs) };
    await withRunningWorld({ sharedDisks: 1, memoryMb: 16, env }, async (w) => {
      const base = await w.baseline('node-a');
      const r = await w.migrate('stall-1', { preDump: 'on' });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      // The final dump is intended only once every iteration stream is done; the streamer then dies for good, so
      // the final images are never sent (the command waits in the queue, nothing reports progress).
      await awaitEvent(w.eventLog, r.migrationId, stepEvent('StepIntended', 'finalDump'));
      await w.services.get('streamer-node-a')!.kill('SIGKILL');
      const killedAt = Date.now();
      const end = await followToEnd(w.eventLog, r.migrationId, () => {});
      const took = Date.now() - killedAt;
      assert.equal(end.type, 'MigrationRolledBack');
      assert.equal(end.type === 'MigrationRolledBack' && end.data.cause?.code, 'HAUL_STREAM_STALLED');
      assert.ok(took < stallMs + 60_000, `rolled back ${took} ms after the streamer died`);
      const events = await w.events(r.migrationId);
      const stalled = events.find(
        (e) => e.type === 'StepFailed' && e.data.error.code === 'HAUL_STREAM_STALLED',
      );
      assert.equal(stalled?.type === 'StepFailed' && stalled.data.step, 'streamImages');
      // The final images' transfer, which no streamer ever took, was given up the configured stall time after its
      // intent (not the default 30 s): no sooner, and within a few seconds of slack for a busy machine.
      const commandId = stalled?.type === 'StepFailed' ? stalled.data.commandId : undefined;
      const intended = events.find((e) => e.type === 'StepIntended' && e.data.commandId === commandId);
      const waited = Date.parse(stalled!.time) - Date.parse(intended!.time);
      assert.ok(waited >= stallMs && waited < stallMs + 15_000, `given up ${waited} ms after its intent`);
      assert.deepEqual(await w.brokenInvariants(r.migrationId, base), []);
    });
  });
});
