import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import {
  connectBus,
  createEventLog,
  ensureTopology,
  openProgress,
  readProgress,
  sendCommand,
  type EventLog,
} from '@haul/bus';
import { createValidators, type StepCommand } from '@haul/schemas';
import {
  migrationRolledBack,
  outcomeOf,
  startNatsServer,
  stepIntended,
  stepTimedOut,
  tempIdentities,
  until,
  type NatsServer,
} from '@haul/test';
import type { ImageStreamer } from '../src/app.ts';
import { streamerOf } from './support.ts';

/**
 * A transfer command that waited for a slot is judged on the log as it is once it has one, not as the command queue
 * read it before the wait: its migration may have ended meanwhile (an operator's resolve), and then nothing is
 * transferred. Two streamers in this process, node-a with one transfer slot, signatures on.
 */
const validators = createValidators();
const ids = tempIdentities();
const coordinator = ids.trust('coordinator');
const lines: string[] = [];
const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
let server: NatsServer;
let nc: NatsConnection;
let dir: string;
let events: EventLog;
const streamers: ImageStreamer[] = [];

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: server.url, name: 'slot-wait-test' });
  await ensureTopology(nc);
  dir = mkdtempSync(join(tmpdir(), 'haul-slot-wait-'));
  events = createEventLog(nc, validators, coordinator);
  for (const node of ['node-a', 'node-b']) {
    const s = streamerOf({ nc, validators, log, trust: ids.trust(`streamer@${node}`) }, node, dir, {
      maxRetries: 20,
      progressEveryMs: 200,
      ...(node === 'node-a' ? { maxTransfers: 1 } : {}),
    });
    await s.start();
    streamers.push(s);
  }
});
after(async () => {
  for (const s of streamers) await s.stop();
  await nc?.drain();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A tree of images on node-a, `mb` MiB of pages. */
function images(name: string, mb: number): string {
  const src = join(dir, 'node-a', 'img', name);
  mkdirSync(join(src, '1'), { recursive: true });
  writeFileSync(join(src, '1', 'pages-1.img'), randomBytes(mb * 1024 * 1024));
  writeFileSync(join(src, 'inventory.img'), randomBytes(300));
  return src;
}

const transfer = (mid: string, name: string, extra: Record<string, unknown> = {}): StepCommand => ({
  commandId: `${mid}:streamImages:${name}:1`,
  migrationId: mid,
  node: 'node-a',
  executor: 'streamer',
  attempt: 1,
  step: 'streamImages',
  timeoutMs: 60_000,
  args: {
    toNode: 'node-b',
    sourceDir: images(name, name === 'slow' ? 8 : 1),
    targetDir: join(dir, 'node-b', 'img', name),
    priority: 'iteration',
    ...extra,
  },
});

describe('image streamer: a command that waited for a transfer slot', () => {
  it('given its migration ended while it waited, then nothing is transferred once the slot frees', async () => {
    // Given node-a's one slot taken by a slow transfer (8 MiB at 1 MB/s)
    const slow = transfer('mig-slot-a', 'slow', { bandwidthLimitMBps: 1 });
    await events.append(stepIntended(slow));
    await sendCommand(nc, validators, coordinator, slow);
    await until(() => streamers[1]!.receiving() > 0, 'the slow transfer under way');
    // and another migration's command waiting for it
    const late = transfer('mig-slot-b', 'late');
    await events.append(stepIntended(late));
    await sendCommand(nc, validators, coordinator, late);
    const kv = await openProgress(nc);
    await until(
      async () =>
        (await readProgress(kv, validators, late.migrationId, 'node-a', late.commandId))?.waiting?.reason ===
        'slot',
      'the late command waiting for a slot',
    );

    // When its migration ends (an operator resolved it), and then the slow transfer is given up, freeing the slot
    await events.append(migrationRolledBack(late.migrationId, 'resolved by an operator (test)'));
    await events.append(stepTimedOut(slow));

    // Then the late command is let go without a transfer: no target folder, no outcome after the log's end
    await until(
      () =>
        lines.some((l) => l.includes('its migration ended while it waited') && l.includes(late.commandId)),
      'the late command let go',
    );
    assert.equal(existsSync(join(dir, 'node-b', 'img', 'late')), false, 'nothing was written on node-b');
    const { events: log } = await events.read(late.migrationId);
    assert.equal(log.map((e) => e.event).filter(outcomeOf(late.commandId)).length, 0, 'no outcome');
  });
});
