import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { MigrationEvent, StepCommand, StepName } from '@haul/schemas';
import { commandsToSend, mayRunBefore, runsBefore, runsInOrder } from './dispatch-order.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';
import { stepTable } from './steps.ts';

/** A log written by hand: a migration of CT 101 from node-a to node-b, in its frozen window with one shared disk. */
const mid = 'm-order';
let n = 0;
const ev = (type: MigrationEvent['type'], data: unknown): MigrationEvent =>
  ({
    eventId: `${mid}:${n++}`,
    migrationId: mid,
    type,
    actor: { service: 'coordinator', node: 'coord' },
    time: '2026-01-01T00:00:00.000Z',
    schemaVersion: 1,
    data,
  }) as MigrationEvent;
const command = (key: string, attempt = 1, node = 'node-a'): StepCommand => {
  const step = key.split(':')[0] as StepName;
  return {
    commandId: `${mid}:${key}:${attempt}`,
    migrationId: mid,
    node,
    executor: stepTable[step].executor,
    attempt,
    step,
    args: {},
    timeoutMs: 1000,
  } as StepCommand;
};
const intent = (c: StepCommand) => ev('StepIntended', c);
const outcome = (c: StepCommand, type: 'StepSucceeded' | 'StepFailed' = 'StepSucceeded') =>
  ev(type, {
    commandId: c.commandId,
    step: c.step,
    node: c.node,
    attempt: c.attempt,
    ...(type === 'StepSucceeded' ? { result: {} } : { error: { code: 'HAUL_X', message: 'x' } }),
  });
const requested = ev('MigrationRequested', {
  request: { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b', mode: 'live' },
  imageRoots: { source: '/a', target: '/b' },
});

const finalDump = command('finalDump:-');
const backup = command('backupDescriptor:1');
const origin = command('snapshotOrigin:1');
const copy = command('snapshotCopy:1');
const finalImages = command('streamImages:final');
const ids = (cs: StepCommand[]) => cs.map((c) => c.commandId);
const nothingSentHere = () => false;

describe('commands in order: the commands a coordinator sends for a decision', () => {
  it("an agent runs each migration's commands in stored order; the streamer runs several at once", () => {
    assert.deepEqual(runsInOrder, { agent: true, streamer: false });
  });

  it("sends first the commands in flight on the same agent that another coordinator intended, then the decision's", () => {
    // Given the log as another coordinator left it: the backup intended (its command maybe not sent yet)
    const s = fold([requested, intent(finalDump), outcome(finalDump), intent(backup)], initialState());

    // When this coordinator decided the rest of the chain
    const sent = commandsToSend(s, [origin, copy], nothingSentHere);

    // Then the backup goes first: stored before the snapshots (or dropped as the duplicate of the one stored)
    assert.deepEqual(ids(sent), ids([backup, origin, copy]));
  });

  it('sends nothing again that this process sent itself', () => {
    // Given the backup intended and sent by this process
    const s = fold([requested, intent(finalDump), outcome(finalDump), intent(backup)], initialState());

    // When it decides the snapshots
    const sent = commandsToSend(s, [origin, copy], (id) => id === backup.commandId);

    // Then only they are sent: one coordinator alone sends each command once
    assert.deepEqual(ids(sent), ids([origin, copy]));
  });

  it('oldest intent first, by its place in the log (a retried step is as old as its new attempt)', () => {
    // Given the backup's first attempt failed, then another agent step and the backup's second attempt intended,
    // neither sent here
    const backup2 = command('backupDescriptor:1', 2);
    const lock = command('lockSource:-');
    const s = fold(
      [requested, intent(backup), outcome(backup, 'StepFailed'), intent(lock), intent(backup2)],
      initialState(),
    );

    // When this coordinator decides the origin's snapshot
    const sent = commandsToSend(s, [origin], nothingSentHere);

    // Then the lock (intended first) goes before the backup's second attempt; the failed attempt is not in flight
    assert.deepEqual(ids(sent), ids([lock, backup2, origin]));
  });

  it("leaves other queues alone: another node's agent, any streamer, and steps that have their outcome", () => {
    // Given in flight: the final images (node-a's streamer) and the target's preflight (node-b's agent); done: the
    // final dump
    const target = command('preflightTarget:-', 1, 'node-b');
    const s = fold(
      [requested, intent(target), intent(finalDump), outcome(finalDump), intent(finalImages)],
      initialState(),
    );

    // When this coordinator decides the backup on node-a's agent
    const sent = commandsToSend(s, [backup], nothingSentHere);

    // Then only the backup is sent
    assert.deepEqual(ids(sent), ids([backup]));
  });

  it('a decision of streamer commands only sends nothing else: their order means nothing', () => {
    // Given another streamer transfer and an agent step in flight on node-a, sent elsewhere
    const disk = command('copyLocalDisk:0');
    const s = fold([requested, intent(backup), intent(disk)], initialState());

    // When this coordinator decides the final images
    const sent = commandsToSend(s, [finalImages], nothingSentHere);

    // Then they go alone
    assert.deepEqual(ids(sent), ids([finalImages]));
  });
});

describe('commands in order: what an agent runs before a command it was handed', () => {
  it('an earlier intent of the migration on the same agent, still without an outcome, goes first', () => {
    // Given the chain intended and nothing of it run (the snapshot handed over first, after an agent's restart)
    const s = fold(
      [requested, intent(finalDump), outcome(finalDump), intent(backup), intent(origin)],
      initialState(),
    );

    // When the agent asks what runs before the origin's snapshot
    // Then the backup does; before the backup, nothing
    assert.equal(runsBefore(s, origin)?.commandId, backup.commandId);
    assert.equal(runsBefore(s, backup), undefined);
  });

  it('the earliest of them, by its place in the log', () => {
    // Given the whole chain intended and none run
    const s = fold([requested, intent(backup), intent(origin), intent(copy)], initialState());

    // When the agent is handed the copy's snapshot first
    // Then the backup is what goes first
    assert.equal(runsBefore(s, copy)?.commandId, backup.commandId);
  });

  it('nothing once the earlier ones have outcomes, failed, refused by their agent or succeeded', () => {
    // Given the backup succeeded and the origin's snapshot refused by node-a's agent (CommandRejected)
    const rejected = {
      ...ev('CommandRejected', {
        commandId: origin.commandId,
        error: { code: 'HAUL_PATH_OUTSIDE', message: 'x' },
      }),
      actor: { service: 'node-agent', node: 'node-a' },
    } as MigrationEvent;
    const s = fold(
      [requested, intent(backup), outcome(backup), intent(origin), rejected, intent(copy)],
      initialState(),
    );

    // When the agent is handed the copy's snapshot
    // Then it has nothing to wait for (the host refuses it if its precondition is missing)
    assert.equal(runsBefore(s, copy), undefined);
  });

  it("ignores other queues: another node's agent, the streamer", () => {
    // Given in flight: the target's preflight (node-b's agent) and the final images (node-a's streamer), intended
    // before the backup
    const target = command('preflightTarget:-', 1, 'node-b');
    const s = fold([requested, intent(target), intent(finalImages), intent(backup)], initialState());

    // When node-a's agent is handed the backup
    // Then nothing goes before it; and a streamer's command never waits
    assert.equal(runsBefore(s, backup), undefined);
    assert.equal(
      runsBefore(fold([requested, intent(backup), intent(finalImages)], initialState()), finalImages),
      undefined,
    );
  });

  it("a command that is not its step's current attempt, or not in the log, waits for nothing", () => {
    // Given the backup's first attempt failed and its second intended, behind a lock still in flight
    const lock = command('lockSource:-');
    const backup2 = command('backupDescriptor:1', 2);
    const s = fold(
      [requested, intent(lock), intent(backup), outcome(backup, 'StepFailed'), intent(backup2)],
      initialState(),
    );

    // When the agent is handed the first attempt again (a late redelivery), or a command no log intends
    // Then neither waits: the agent's own checks decide about them
    assert.equal(runsBefore(s, backup), undefined);
    assert.equal(runsBefore(s, copy), undefined);
    // and the second attempt waits for the lock
    assert.equal(runsBefore(s, backup2)?.commandId, lock.commandId);
  });
});

describe('commands in order: the log alone says when the fold can be spared', () => {
  it('given an earlier intent on the same agent without an outcome, then the fold decides; else nothing runs before', () => {
    const chain = [requested, intent(finalDump), outcome(finalDump), intent(backup), intent(origin)];
    assert.equal(mayRunBefore(chain, origin), true);
    assert.equal(mayRunBefore(chain, backup), false);
    assert.equal(mayRunBefore([...chain, outcome(backup)], origin), false);
    assert.equal(mayRunBefore(chain, finalImages), false);
  });

  it('never says false where runsBefore names a command: every intent of every prefix of the golden logs', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'logs');
    const files = readdirSync(dir).filter((f) => f.endsWith('.jsonl'));
    assert.ok(files.length > 0, `golden logs in ${dir}`);
    let checked = 0;
    for (const f of files) {
      const log = readFileSync(join(dir, f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as MigrationEvent);
      for (let n = 1; n <= log.length; n++) {
        const prefix = log.slice(0, n);
        const s = fold(prefix, initialState());
        for (const e of prefix) {
          if (e.type !== 'StepIntended') continue;
          checked++;
          if (!mayRunBefore(prefix, e.data))
            assert.equal(runsBefore(s, e.data), undefined, `${f}, first ${n} events, ${e.data.commandId}`);
        }
      }
    }
    assert.ok(checked > 100, `${checked} intents checked`);
  });
});
