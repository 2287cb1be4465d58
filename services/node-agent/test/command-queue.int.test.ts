import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { commandConsumerName, createEventLog, encodeJson, streams, subjects } from '@haul/bus';
import type { DeadLetter } from '@haul/bus';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import {
  awaitEvent,
  outcomeOf,
  publishAs,
  startWorld,
  stepIntended,
  type ServiceProcess,
  type World,
} from '@haul/test';

/**
 * The agent's command queue against single bad messages, published straight to haul.cmd.node-a.agent: each is
 * parked and rejected, and the command after it still gets its outcome (the agent is never deafened).
 */
let w: World;
let agent: ServiceProcess;
before(async () => {
  // Signatures on, the bus open to any client (secure: false): bad messages must reach the agent to be refused by
  // it, and deleting its consumer (below) is denied to every identity of a secure cluster.
  w = await startWorld({ sharedDisks: 0, secure: false });
  agent = await w.startAgent('node-a');
});
after(async () => {
  await w?.stop();
});

let sent = 0;
const validators = createValidators();
/**
 * Send as the coordinator does: signed with its key, after intending the command in its log when it is a valid one
 * (the bad ones here are signed, so they are refused for what they say, not for who sent them).
 */
async function send(cmd: Record<string, unknown>): Promise<void> {
  const coordinator = w.identities.trust('coordinator');
  const valid = validators.validate<StepCommand>('command', cmd);
  if (valid.ok) await createEventLog(w.nc, validators, coordinator).append(stepIntended(valid.value));
  await publishAs(w.nc, coordinator, subjects.commands('node-a', 'agent'), encodeJson(cmd), `test-${++sent}`);
}

/** A command the agent runs at once and that succeeds: remove a folder that is not there. */
const removeNothing = (migrationId: string, commandId = `${migrationId}:removeFiles:test:1`) => ({
  commandId,
  migrationId,
  node: 'node-a',
  executor: 'agent',
  attempt: 1,
  step: 'removeFiles',
  timeoutMs: 30_000,
  args: { paths: [join(w.imageRoot('node-a'), `haul-${migrationId}`)] },
});

const rejectedIn = (migrationId: string) =>
  awaitEvent(w.eventLog, migrationId, (e) => e.type === 'CommandRejected');

async function lastDeadLetter(): Promise<DeadLetter> {
  const jsm = await jetstreamManager(w.nc);
  const m = await jsm.streams.getMessage(streams.deadLetters, {
    last_by_subj: subjects.deadLetters('node-agent', 'node-a'),
  });
  const letter = m!.json<DeadLetter>();
  // What the AsyncAPI document promises for haul.dead.<service>.<node>.
  const v = createValidators().validate('deadLetter', letter);
  assert.ok(v.ok, JSON.stringify(v));
  return letter;
}

/** The good command after the bad ones gets its outcome: the consumer lives on. */
async function stillServes(migrationId: string): Promise<void> {
  const good = removeNothing(migrationId);
  await send(good);
  const outcome = await awaitEvent(w.eventLog, migrationId, outcomeOf(good.commandId), 30_000);
  assert.equal(outcome.type, 'StepSucceeded');
}

describe('node agent: one bad command never deafens it', () => {
  it('refuses a 290-character command id by its schema (maxLength): parked, rejected, the next one runs', async () => {
    const mid = 'm-long-0001';
    await send(removeNothing(mid, `${mid}:removeFiles:${'x'.repeat(260)}:1`));
    const e = await rejectedIn(mid);
    assert.ok(e.type === 'CommandRejected');
    assert.equal(e.data.error.field, 'commandId');
    assert.equal(e.data.error.rule, 'maxLength');
    assert.equal(e.data.commandId, undefined, 'an invalid command id is not copied into the log');
    assert.match((await lastDeadLetter()).reason, /HAUL_INVALID_MESSAGE/);
    await stillServes('m-long-0002');
  });

  it('refuses a command id with a newline (no NATS header may carry it): parked once, never re-run', async () => {
    const mid = 'm-newline-1';
    await send(removeNothing(mid, `${mid}:removeFiles:a\nb:1`));
    const e = await rejectedIn(mid);
    assert.ok(e.type === 'CommandRejected');
    assert.equal(e.data.error.field, 'commandId');
    assert.equal(e.data.error.rule, 'pattern');
    await stillServes('m-newline-2');
    const events = await w.events(mid);
    assert.deepEqual(
      events.map((x) => x.type),
      ['CommandRejected'],
      'refused once, nothing ran',
    );
  });

  it('records the rejection of a command with a 200 KB field name with its texts bounded, once', async () => {
    const mid = 'm-bigfield1';
    await send({ ...removeNothing(mid), ['x'.repeat(200_000)]: 1 });
    const e = await rejectedIn(mid);
    assert.ok(e.type === 'CommandRejected');
    assert.equal(e.data.error.rule, 'additionalProperties');
    assert.ok(e.data.error.field!.length <= 200 && e.data.error.message.length <= 2000);
    await stillServes('m-bigfield2');
    assert.equal((await w.events(mid)).length, 1, 'refused once');
  });

  it('parks a command whose handling throws (its marker cannot be written) and runs the next one', async () => {
    // The markers' folder is replaced by a file: writing the command's marker fails (ENOTDIR), outside any step.
    const markers = join(w.cluster.nodeRoot('node-a'), 'var', 'lib', 'haul', 'commands');
    rmSync(markers, { recursive: true, force: true });
    writeFileSync(markers, 'in the way');
    const mid = 'm-throws-01';
    const cmd = removeNothing(mid);
    try {
      await send(cmd);
      const e = await rejectedIn(mid);
      assert.ok(e.type === 'CommandRejected');
      assert.equal(e.data.error.code, 'HAUL_COMMAND_UNHANDLED');
      assert.match(e.data.error.message, /ENOTDIR/);
      assert.equal(e.data.commandId, cmd.commandId, 'a valid command id is recorded');
      const letter = await lastDeadLetter();
      assert.match(letter.reason, /HAUL_COMMAND_UNHANDLED/);
      assert.equal((JSON.parse(letter.payload) as { commandId: string }).commandId, cmd.commandId);
    } finally {
      rmSync(markers, { force: true });
      mkdirSync(markers);
    }
    await stillServes('m-throws-02');
    const again: MigrationEvent[] = await w.events(mid);
    assert.ok(!again.some(outcomeOf(cmd.commandId)), 'the parked command was not run again');
  });
});

describe('node agent: a dead command consumer ends the process', () => {
  it('exits non-zero when its durable consumer is deleted, instead of heartbeating while deaf', async () => {
    const jsm = await jetstreamManager(w.nc);
    await jsm.consumers.delete(streams.commands, commandConsumerName('node-a', 'agent'));
    const giveUp = new AbortController();
    const code = await Promise.race([
      agent.exited,
      delay(45_000, 'still running after 45 s', { signal: giveUp.signal }),
    ]).finally(() => giveUp.abort());
    assert.equal(code, 70);
    assert.ok(agent.lines.some((l) => /command consumer (ended|failed)/.test(l)));
  });
});
