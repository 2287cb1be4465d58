import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { StoredEvent } from '@haul/bus';
import { fold, initialState, projectStatus } from '@haul/domain';
import type { MigrationEvent, NodeHeartbeat, TransferProgress } from '@haul/schemas';
import { createWebModel, type WebChange } from './web-model.ts';

const logs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'logs');

/** A golden log as the event log gives it: each event with a stream sequence (1, 2, …), optionally renamed. */
function golden(name: string, migrationId?: string): StoredEvent[] {
  return readFileSync(join(logs, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l, i) => {
      const event = JSON.parse(l) as MigrationEvent;
      return { seq: i + 1, event: migrationId ? { ...event, migrationId } : event };
    });
}

const migrationViews = (changes: WebChange[]) =>
  changes.flatMap((c) => (c.kind === 'migration' ? [c.view] : []));

const indexOf = (log: StoredEvent[], pred: (e: MigrationEvent) => boolean) =>
  log.findIndex((s) => pred(s.event));

describe('the web view model', () => {
  const log = golden('live-shared-and-local');
  const id = log[0]!.event.migrationId;

  it('shows, after every event, the status the coordinator projects from the same log', () => {
    const changes: WebChange[] = [];
    const model = createWebModel((c) => changes.push(c));
    for (const s of log) model.apply(id, [s]);
    const views = migrationViews(changes);
    assert.equal(views.length, log.length, 'one change per event');
    views.forEach((v, i) => {
      const { requestedAt: _r, transfers: _t, frozenSince: _f, frozenUntil: _u, progress: _p, ...status } = v;
      const expected = projectStatus(
        fold(
          log.slice(0, i + 1).map((s) => s.event),
          initialState(),
        ),
        i + 1,
      );
      assert.deepEqual(status, expected, `after event ${i + 1}`);
    });
    assert.equal(model.migration(id)?.phase, 'completed');
    const timeline = model.timeline(id)!;
    assert.deepEqual(
      timeline.map((e) => [e.seq, e.type]),
      log.map((s) => [s.seq, s.event.type]),
    );
    assert.equal(timeline.at(-1)?.tone, 'end');
    assert.match(timeline[0]!.detail, /^CT 101 node-a → node-b \(live\)$/);
  });

  it('folds a read of the whole log and a live follow that overlap once, in log order', () => {
    const changes: WebChange[] = [];
    const model = createWebModel((c) => changes.push(c));
    model.apply(id, log.slice(0, 10));
    model.apply(id, log.slice(5, 12)); // a follow that started before the read ended
    model.apply(id, log.slice(0, 3)); // nothing new
    assert.equal(model.lastSeq(id), 12);
    assert.deepEqual(
      model.timeline(id)!.map((e) => e.seq),
      log.slice(0, 12).map((s) => s.seq),
    );
    assert.equal(changes.length, 2, 'no change for what was folded already');
  });

  it('runs the frozen timer from the final dump’s intent until the restore succeeded', () => {
    const model = createWebModel();
    const freeze = indexOf(log, (e) => e.type === 'StepIntended' && e.data.step === 'finalDump');
    const restored = indexOf(log, (e) => e.type === 'StepSucceeded' && e.data.step === 'restore');
    model.apply(id, log.slice(0, freeze));
    assert.equal(model.migration(id)?.frozenSince, undefined);
    model.apply(id, log.slice(0, freeze + 1));
    assert.equal(model.migration(id)?.frozenSince, log[freeze]!.event.time);
    assert.equal(model.migration(id)?.frozenUntil, undefined);
    model.apply(id, log.slice(0, restored + 1));
    assert.equal(model.migration(id)?.frozenUntil, log[restored]!.event.time);
  });

  it('shows the report of a transfer in flight, not of one that ended or of a command it does not know', () => {
    const model = createWebModel();
    const at = indexOf(log, (e) => e.type === 'StepIntended' && e.data.step === 'streamImages');
    const intent = log[at]!.event as Extract<MigrationEvent, { type: 'StepIntended' }>;
    const done = indexOf(
      log,
      (e) => e.type === 'StepSucceeded' && e.data.commandId === intent.data.commandId,
    );
    model.apply(id, log.slice(0, at + 1));
    const report = (commandId: string, bytesDone: number): TransferProgress => ({
      migrationId: id,
      commandId,
      node: 'node-a',
      time: '2026-01-01T00:00:01.000Z',
      bytesDone,
      bytesTotal: 4_000_000,
      mbPerSec: 8,
      etaMs: 500,
    });
    model.setTransfer(report(intent.data.commandId, 1_000_000));
    model.setTransfer(report(`${id}:streamImages:9:1`, 3_000_000));
    const v = model.migration(id)!;
    assert.deepEqual(
      v.transfers.map((t) => t.commandId),
      [intent.data.commandId],
    );
    assert.deepEqual(v.progress, {
      bytesDone: 1_000_000,
      bytesTotal: 4_000_000,
      percent: 25,
      mbPerSec: 8,
      etaMs: 500,
    });
    model.apply(id, log.slice(0, done + 1));
    assert.deepEqual(model.migration(id)?.transfers, []);
    assert.equal(model.migration(id)?.progress, undefined);
  });

  it('keeps the active migrations and the latest ended ones, the active first', () => {
    const changes: WebChange[] = [];
    const model = createWebModel((c) => changes.push(c), 1);
    const old = golden('live-shared-and-local', 'm-old');
    const recent = golden('live-rollback-at-snapshot-copy', 'm-recent').map((s) => ({
      ...s,
      event: { ...s.event, time: '2026-01-02T00:00:00.000Z' },
    }));
    model.apply('m-old', old);
    model.apply('m-active', golden('live-shared-and-local', 'm-active').slice(0, 5));
    model.apply('m-recent', recent);
    assert.deepEqual(
      model.migrations().map((v) => [v.migrationId, v.phase]),
      [
        ['m-active', 'preflight'],
        ['m-recent', 'rolled-back'],
      ],
    );
    assert.ok(changes.some((c) => c.kind === 'migration-gone' && c.migrationId === 'm-old'));
  });

  it('keeps each node’s latest heartbeat until its key is deleted', () => {
    const changes: WebChange[] = [];
    const model = createWebModel((c) => changes.push(c));
    const hb = (node: string, time: string): NodeHeartbeat => ({
      node,
      service: 'node-agent',
      time,
      criuVersion: '3.17',
      memTrack: true,
      cpuFlags: [],
      freeBytes: 1e9,
      imageRoot: '/var/local/haul',
    });
    model.setNode(hb('node-b', '2026-01-01T00:00:00.000Z'));
    model.setNode(hb('node-a', '2026-01-01T00:00:00.000Z'));
    model.setNode(hb('node-a', '2026-01-01T00:00:02.000Z'));
    assert.deepEqual(
      model.nodes().map((n) => [n.node, n.time]),
      [
        ['node-a', '2026-01-01T00:00:02.000Z'],
        ['node-b', '2026-01-01T00:00:00.000Z'],
      ],
    );
    model.dropNode('node-b');
    model.dropNode('node-x');
    assert.deepEqual(
      model.nodes().map((n) => n.node),
      ['node-a'],
    );
    assert.deepEqual(changes.at(-1), { kind: 'node-gone', node: 'node-b' });
  });
});
