import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { EventLog, StoredEvent } from '@haul/bus';
import type { MigrationEvent } from '@haul/schemas';
import { createWebModel } from './web-model.ts';
import { heartbeatOf, serialIngest } from './web-sources.ts';

const logs = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'logs');
const log: StoredEvent[] = readFileSync(join(logs, 'live-shared-and-local.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l, i) => ({ seq: i + 1, event: JSON.parse(l) as MigrationEvent }));
const id = log[0]!.event.migrationId;

/** An event log whose reads return the log up to `upTo` (what the stream holds when the read runs). */
function fakeLog(upTo: () => number) {
  const reads: string[] = [];
  const eventLog = {
    read: (migrationId: string) => {
      reads.push(migrationId);
      const events = migrationId === id ? log.slice(0, upTo()) : [];
      return Promise.resolve({ events, lastSeq: events.at(-1)?.seq ?? 0 });
    },
  } as unknown as EventLog;
  return { eventLog, reads };
}

describe('haul web: feeding the model from the log', () => {
  it('reads a migration met in the middle of its log whole first, then folds what follows once', async () => {
    const model = createWebModel();
    const { eventLog, reads } = fakeLog(() => 20);
    const ingest = serialIngest(eventLog, model);
    // The follow starts at --since, in the middle of the migration's log (event 15); the read returns up to 20.
    for (const s of log.slice(14, 25)) await ingest.event(s);
    assert.deepEqual(reads, [id], 'one read');
    assert.deepEqual(
      model.timeline(id)!.map((e) => e.seq),
      log.slice(0, 25).map((s) => s.seq),
    );
  });

  it('reads a migration a coordinator lists as active once, whatever the follow brings meanwhile', async () => {
    const model = createWebModel();
    let stored = 10;
    const { eventLog, reads } = fakeLog(() => stored);
    const ingest = serialIngest(eventLog, model);
    const listed = ingest.backfill(id);
    stored = 12; // appended while the backfill waited its turn
    await Promise.all([listed, ingest.event(log[10]!), ingest.event(log[11]!), ingest.backfill(id)]);
    assert.deepEqual(reads, [id]);
    assert.equal(model.lastSeq(id), 12);
    assert.equal(model.timeline(id)!.length, 12);
  });

  it('starts a migration from its request without reading its log', async () => {
    const model = createWebModel();
    const { eventLog, reads } = fakeLog(() => 0);
    await serialIngest(eventLog, model).event(log[0]!);
    assert.deepEqual(reads, []);
    assert.equal(model.migration(id)?.phase, 'preflight');
  });

  it('takes a heartbeat with the fields the page shows, and nothing else', () => {
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const hb = { node: 'node-a', time: '2026-01-01T00:00:00.000Z', freeBytes: 1, criuVersion: '3.17' };
    assert.equal(heartbeatOf(enc(hb))?.node, 'node-a');
    assert.equal(heartbeatOf(enc({ ...hb, time: 'yesterday' })), undefined);
    assert.equal(heartbeatOf(enc({ ...hb, freeBytes: '1' })), undefined);
    assert.equal(heartbeatOf(enc(null)), undefined);
    assert.equal(heartbeatOf(new TextEncoder().encode('{not json')), undefined);
  });
});
