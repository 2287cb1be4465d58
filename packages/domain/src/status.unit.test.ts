import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { MigrationEvent } from '@haul/schemas';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';
import { projectStatus, sealedStatus, statusSnapshot, statusVersion } from './status.ts';

const logs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'logs');
const golden = (name: string): MigrationEvent[] =>
  readFileSync(join(logs, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as MigrationEvent);

type Seal = Extract<MigrationEvent, { type: 'MigrationSealed' }>;

/** A finished golden log (its events at sequences 1..n), the seal the coordinator writes after it at n + 1. */
function sealedLog(name: string, edit: (data: Seal['data']) => Seal['data'] = (d) => d) {
  const events = golden(name);
  const state = fold(events, initialState());
  const upToSeq = events.length;
  const seal: Seal = {
    eventId: `${events[0]!.migrationId}:sealed`,
    migrationId: events[0]!.migrationId,
    type: 'MigrationSealed',
    actor: { service: 'coordinator', node: 'coord' },
    time: '2026-01-01T00:01:00.000Z',
    schemaVersion: 1,
    data: edit({
      upToSeq,
      events: upToSeq,
      digest: `sha256:${'0'.repeat(64)}`,
      ...statusSnapshot(projectStatus(state, upToSeq)!),
    }),
  };
  return { state, seal, sealSeq: upToSeq + 1 };
}

describe("a seal's status snapshot", () => {
  for (const name of [
    'live-shared-and-local',
    'live-rollback-at-snapshot-copy',
    'restart-shared-and-local',
  ]) {
    it(`given the finished log ${name}, then the snapshot is the status its events and seal fold to`, () => {
      const { state, seal, sealSeq } = sealedLog(name);
      const folded = projectStatus(fold([seal], state), sealSeq);
      assert.deepEqual(sealedStatus(seal, sealSeq), folded);
      assert.ok(folded!.stats, 'a terminal status, with its stats');
    });
  }

  it('given a snapshot of another projection version, then it is not used', () => {
    const { seal, sealSeq } = sealedLog('live-shared-and-local', (d) => ({
      ...d,
      statusVersion: statusVersion + 1,
    }));
    assert.equal(sealedStatus(seal, sealSeq), undefined);
  });

  it('given a snapshot of another migration, or at another sequence than the sealed terminal event, then it is not used', () => {
    const other = sealedLog('live-shared-and-local', (d) => ({
      ...d,
      status: { ...d.status!, migrationId: 'm-other' },
    }));
    assert.equal(sealedStatus(other.seal, other.sealSeq), undefined);
    const earlier = sealedLog('live-shared-and-local', (d) => ({
      ...d,
      status: { ...d.status!, lastSeq: d.upToSeq - 1 },
    }));
    assert.equal(sealedStatus(earlier.seal, earlier.sealSeq), undefined);
  });

  it('given a snapshot of a migration not ended, or none, then it is not used', () => {
    const running = sealedLog('live-shared-and-local', (d) => ({
      ...d,
      status: { ...d.status!, phase: 'frozen' },
    }));
    assert.equal(sealedStatus(running.seal, running.sealSeq), undefined);
    const none = sealedLog('live-shared-and-local', ({ upToSeq, events, digest }) => ({
      upToSeq,
      events,
      digest,
    }));
    assert.equal(sealedStatus(none.seal, none.sealSeq), undefined);
  });
});
