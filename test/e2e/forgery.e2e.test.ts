import assert from 'node:assert/strict';
import { mkdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { headers } from '@nats-io/nats-core';
import type { Msg } from '@nats-io/transport-node';
import { createUser } from '@nats-io/nkeys';
import {
  buckets,
  decodeJson,
  encodeJson,
  openBucket,
  signWith,
  streams,
  subjects,
  type DeadLetter,
} from '@haul/bus';
import { followToEnd } from '@haul/cli';
import type { MigrationEvent, StepCommand } from '@haul/schemas';
import {
  awaitSeal,
  checkSeal,
  injections,
  publishAs,
  repoRoot,
  withRunningWorld,
  type World,
} from '@haul/test';

/**
 * Forgery with a valid NATS connection: whoever can publish into haul.events.<id> or haul.cmd.> —
 * a scheduler, another node's agent, anyone unsigned — cannot make haul believe a step's outcome, a decision of the
 * coordinator, or a command. Each forgery is ignored, reported, and the migration ends exactly as it would have.
 *
 * The worlds here keep the signatures but open the bus to every client (`secure: false`): with the permissions of
 * `haul init-cluster` the server itself refuses most of these publishes (the permission matrix test shows it), and
 * what is tested here is the layer behind that one, for the identities the permissions cannot tell apart.
 */
const world = { secure: false, sharedDisks: 1, memoryMb: 16 } as const;

type Intent = Extract<MigrationEvent, { type: 'StepIntended' }>['data'];
const enc = new TextEncoder();

function forged(
  mid: string,
  type: MigrationEvent['type'],
  actor: MigrationEvent['actor'],
  data: unknown,
  id: string,
) {
  return enc.encode(
    JSON.stringify({
      eventId: id,
      migrationId: mid,
      type,
      actor,
      time: new Date().toISOString(),
      schemaVersion: 1,
      data,
    }),
  );
}

/** What every service says it refused to believe (discovery stats). */
async function rejectedBy(w: World): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  // Every service of the world answers: wait for all of them (a loaded machine can delay one for seconds), at most
  // 30 s, after which the ones missing fail the comparisons below by name.
  const replies = await w.nc.requestMany(subjects.discovery, encodeJson({}), {
    strategy: 'count',
    maxMessages: w.services.size,
    maxWait: 30_000,
  });
  for await (const m of replies) {
    const d = decodeJson(m.data) as {
      service: string;
      node: string;
      rejectedMessages?: number;
      signed?: boolean;
    };
    assert.equal(d.signed, true, `${d.service}@${d.node} checks signatures`);
    out[`${d.service}@${d.node}`] = d.rejectedMessages ?? -1;
  }
  return out;
}

/** Watch for the next `n` messages the node agents park as dead letters; resolves once the watch is in place. */
async function watchLetters(
  w: World,
  n: number,
  timeoutMs = 120_000,
): Promise<{ letters: Promise<DeadLetter[]> }> {
  const consumer = await jetstream(w.nc).consumers.get(streams.deadLetters, {
    filter_subjects: subjects.deadLettersAll, // one filter: nats-server 2.9 takes no list
    deliver_policy: DeliverPolicy.New,
  });
  const iter = await consumer.consume();
  const collect = async (): Promise<DeadLetter[]> => {
    const timer = setTimeout(() => void iter.close(), timeoutMs);
    const out: DeadLetter[] = [];
    try {
      for await (const m of iter) {
        const letter = m.json<DeadLetter>();
        if (letter.service === 'node-agent') out.push(letter);
        if (out.length >= n) return out;
      }
    } finally {
      clearTimeout(timer);
      await iter.close();
    }
    throw new Error(`only ${out.length} dead letters: ${JSON.stringify(out.map((l) => l.reason))}`);
  };
  return { letters: collect() };
}

/** The stats of a real MigrationCompleted (a golden log), so the forged one is well-formed. */
const someStats = (): unknown => {
  const lines = readFileSync(join(repoRoot, 'test/fixtures/logs/live-shared-and-local.jsonl'), 'utf8').split(
    '\n',
  );
  const done = lines
    .filter(Boolean)
    .map((l) => JSON.parse(l) as MigrationEvent)
    .find((e) => e.type === 'MigrationCompleted')!;
  return done.data;
};

describe('forged events with a valid NATS connection', () => {
  it("a forged StepSucceeded and RestoreStarted for the restore, published before the target's agent runs it: ignored, reported, the migration completes", async () => {
    await withRunningWorld(world, async (w) => {
      const scheduler = w.identities.trust('scheduler');
      const sourceAgent = w.identities.trust('agent@node-a'); // a valid identity, but of another node
      const sent: Promise<{ duplicate: boolean }>[] = [];
      const base = await w.baseline('node-a');
      const r = await w.migrate('forge-restore');
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      const mid = r.migrationId;
      const subject = subjects.events(mid);
      const forge = (restore: Intent) => {
        const outcome = (node: string) => ({
          commandId: restore.commandId,
          step: 'restore',
          node,
          attempt: restore.attempt,
          result: { actions: ['restored'] },
        });
        const asAgent = (node: string) => ({ service: 'node-agent', node }) as const;
        // The real events' ids, as message ids: the forgeries squat JetStream's duplicate window too.
        const result = `${restore.commandId}:result`;
        const started = `${restore.commandId}:restore-started`;
        sent.push(
          publishAs(
            w.nc,
            scheduler,
            subject,
            forged(mid, 'StepSucceeded', asAgent('node-b'), outcome('node-b'), result),
            result,
          ),
          publishAs(
            w.nc,
            undefined,
            subject,
            forged(mid, 'StepSucceeded', asAgent('node-b'), outcome('node-b'), `${result}:u`),
          ),
          publishAs(
            w.nc,
            sourceAgent,
            subject,
            forged(mid, 'StepSucceeded', asAgent('node-a'), outcome('node-a'), `${result}:a`),
          ),
          publishAs(
            w.nc,
            sourceAgent,
            subject,
            forged(mid, 'RestoreStarted', asAgent('node-a'), { commandId: restore.commandId }, started),
            started,
          ),
        );
      };
      const end = await followToEnd(w.eventLog, mid, (e) => {
        if (e.type === 'StepIntended' && e.data.step === 'restore') forge(e.data);
      });
      // A forgery that takes a real event's id is dropped by JetStream's duplicate window when the real event came
      // first: the target's RestoreStarted can win that race against this test's publish. Only what was stored can
      // be read, and refused.
      const stored = (await Promise.all(sent)).filter((ack) => !ack.duplicate).length;
      const events = await w.events(mid);
      const story = events.map((e) => `${e.type} ${'step' in e.data ? String(e.data.step) : ''}`).join('\n');
      assert.equal(end.type, 'MigrationCompleted', story);
      assert.equal(sent.length, 4, 'the forgeries were published');

      const restoreOutcomes = events.filter((e) => e.type === 'StepSucceeded' && e.data.step === 'restore');
      assert.equal(restoreOutcomes.length, 1);
      assert.deepEqual(restoreOutcomes[0]!.actor, { service: 'node-agent', node: 'node-b' });
      assert.deepEqual(await w.brokenInvariants(mid, base), [], 'the CT runs on node-b, nothing left behind');
      // Reported: by the reader of this test, by the coordinator and by the target's agent that read them.
      assert.ok(stored >= 3, `${stored} of the 4 forgeries stored`);
      assert.ok(
        w.readerTrust.rejections >= stored,
        `world reader refused ${w.readerTrust.rejections} of ${stored} stored forgeries`,
      );
      const rejected = await rejectedBy(w);
      assert.ok((rejected['coordinator@coordinator'] ?? 0) >= 3, JSON.stringify(rejected));
      assert.ok((rejected['node-agent@node-b'] ?? 0) >= 1, JSON.stringify(rejected));
      assert.ok(
        w.services
          .get('agent-node-b')!
          .lines.some((l) => l.includes('"security":true') && l.includes('scheduler')),
        'the agent logged the forgery with its claimed signer',
      );
      // The coordinator's seal vouches for what it believed, not for the forgeries: a reader of the whole log finds
      // that its own chain differs, checks every message itself, and refuses the forgeries as a read does.
      const sealed = await checkSeal(w.nc, w.eventLog, w.readerTrust, mid);
      assert.deepEqual(sealed.seal, sealed.believed);
      assert.notDeepEqual(sealed.seal, sealed.all);
      assert.ok(sealed.replayChecks >= sealed.read.length, `${sealed.replayChecks} signature checks`);
      assert.deepEqual(sealed.replayed, sealed.read);
      assert.equal(sealed.read.at(-1)!.event.type, 'MigrationSealed');
      // Its status snapshot is what the reader's own fold gives (the coordinator did not believe the forgeries
      // either), but it is not taken: the chain differs, so a replay for statuses folds the events it believes.
      assert.deepEqual(sealed.snapshot, sealed.folded);
      assert.deepEqual(sealed.replayedWithSnapshots.flat(), sealed.read);
      // Nor by a reader of each log's last message: the subject holds more messages than the seal vouches for.
      assert.deepEqual(sealed.replayedFromSeals, [sealed.read]);
    });
  });

  it('a forged MigrationCompleted after snapshotOrigin, with the restore failing: ignored, the migration rolls back', async () => {
    await withRunningWorld({ ...world, faults: injections['restore']!.rules ?? [] }, async (w) => {
      const scheduler = w.identities.trust('scheduler');
      const targetAgent = w.identities.trust('agent@node-b');
      const sent: Promise<unknown>[] = [];
      const base = await w.baseline('node-a');
      const r = await w.migrate('forge-completed', { preDump: 'on' });
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      const mid = r.migrationId;
      const subject = subjects.events(mid);
      const coordinator = { service: 'coordinator', node: 'coordinator' } as const;
      const end = await followToEnd(w.eventLog, mid, (e) => {
        if (e.type !== 'StepSucceeded' || e.data.step !== 'snapshotOrigin') return;
        const done = (id: string) =>
          forged(mid, 'MigrationCompleted', coordinator, someStats(), `${mid}:forged:${id}`);
        sent.push(
          publishAs(w.nc, scheduler, subject, done('s')),
          publishAs(w.nc, undefined, subject, done('u')),
          publishAs(w.nc, targetAgent, subject, done('b')),
        );
      });
      await Promise.all(sent);
      assert.equal(sent.length, 3, 'the forgeries were published');
      assert.equal(
        end.type,
        'MigrationRolledBack',
        'the migration ended as the restore failure makes it end',
      );
      // The status is projected after the event is appended: watch its key until it is terminal.
      const kv = await openBucket(w.nc, buckets.status);
      const watch = await kv.watch({ key: mid });
      let phase: string | undefined;
      for await (const entry of watch) {
        if (entry.operation !== 'PUT') continue;
        phase = entry.json<{ phase: string }>().phase;
        if (phase === 'rolled-back' || phase === 'completed') break;
      }
      watch.stop();
      assert.equal(phase, 'rolled-back', 'the status says so too');
      assert.deepEqual(await w.brokenInvariants(mid, base), [], 'the CT runs on node-a, the disk is whole');
      const rejected = await rejectedBy(w);
      assert.ok((rejected['coordinator@coordinator'] ?? 0) >= 3, JSON.stringify(rejected));
    });
  });
});

describe('forged and replayed commands', () => {
  it('a command signed with a wrong key is not run and writes nothing; a replayed signed command is refused', async () => {
    await withRunningWorld(world, async (w) => {
      // Record the commands the coordinator sends (with their signatures) during a first migration.
      const captured: Msg[] = [];
      const tap = w.nc.subscribe(subjects.commandsAll, { callback: (_e, m) => void captured.push(m) });
      const r = await w.migrate('forge-cmd-1');
      assert.ok(r.ok, JSON.stringify(r));
      if (!r.ok) return;
      // However it ends (on a loaded machine a transfer may stall and roll back): its commands ran and it has ended.
      await followToEnd(w.eventLog, r.migrationId, () => {});
      tap.unsubscribe();
      // A clean migration: nothing was refused anywhere (no authentic event or command is ever taken for a forgery).
      assert.equal(w.readerTrust.rejections, 0);
      assert.ok(Object.values(await rejectedBy(w)).every((n) => n === 0));
      // Its seal comes after its end: counted once it is there, nothing authentic is still to come.
      await awaitSeal(w.eventLog, r.migrationId);
      const eventsBefore = (await w.events(r.migrationId)).length;

      // A folder a preDump would delete (rm -rf), on the node the CT now runs on.
      const victim = join(w.imageRoot('node-b'), 'keep-me');
      mkdirSync(victim, { recursive: true });
      const preDump = (migrationId: string): StepCommand => ({
        commandId: `${migrationId}:preDump:0:1`,
        migrationId,
        node: 'node-b',
        executor: 'agent',
        attempt: 1,
        step: 'preDump',
        timeoutMs: 30_000,
        args: { ctid: w.ctid, iteration: 0, imageDir: victim, workDir: victim },
      });
      // An nkey the registry does not know, signing as a coordinator would.
      const unregistered = createUser();
      const wrongKey = { sign: (subject: string, body: Uint8Array) => signWith(unregistered, subject, body) };
      const agentB = subjects.commands('node-b', 'agent');
      const { letters } = await watchLetters(w, 6);

      // Replays of the first migration's own signed commands (their signature headers only; a fresh message id, past
      // JetStream's duplicate window): as they were, with another migration id under the old signature, and on
      // another node's subject.
      const signedCmd = captured.find((m) => (decodeJson(m.data) as StepCommand).step === 'preflightTarget');
      assert.ok(signedCmd, 'a signed command was captured');
      const original = decodeJson(signedCmd.data) as StepCommand;
      const replay = (subject: string, data: Uint8Array) => {
        const h = headers();
        for (const k of ['Haul-Signer', 'Haul-Signature']) h.set(k, signedCmd.headers!.get(k));
        return jetstream(w.nc).publish(subject, data, { headers: h });
      };
      await replay(signedCmd.subject, signedCmd.data);
      const retargeted = {
        ...original,
        migrationId: 'm-forge-cmd-r',
        commandId: 'm-forge-cmd-r:preflightTarget:-:1',
      };
      await replay(signedCmd.subject, encodeJson(retargeted));
      await replay(subjects.commands('node-a', 'agent'), signedCmd.data);
      // Forged: a key the registry does not know, a scheduler's key, no signature at all.
      await publishAs(w.nc, wrongKey, agentB, encodeJson(preDump('m-forge-cmd-k')));
      await publishAs(w.nc, w.identities.trust('scheduler'), agentB, encodeJson(preDump('m-forge-cmd-s')));
      await publishAs(w.nc, undefined, agentB, encodeJson(preDump('m-forge-cmd-u')));
      // Signed by the coordinator's key, but intended in no log: refused too (the body is bound to the log).
      await publishAs(w.nc, w.identities.trust('coordinator'), agentB, encodeJson(preDump('m-forge-cmd-c')));

      // Then: six dead letters saying why, six refusals counted, no event anywhere, the folder still there; the
      // replay as it was ran nothing either (its outcome is in the log: a duplicate delivery).
      const reasons = (await letters).map((l) => `${l.node} ${l.reason.split(':')[0]}`).sort();
      assert.deepEqual(reasons, [
        'node-a HAUL_COMMAND_UNAUTHENTICATED',
        'node-b HAUL_COMMAND_NOT_INTENDED',
        'node-b HAUL_COMMAND_UNAUTHENTICATED',
        'node-b HAUL_COMMAND_UNAUTHENTICATED',
        'node-b HAUL_COMMAND_UNAUTHENTICATED',
        'node-b HAUL_COMMAND_UNAUTHENTICATED',
      ]);
      assert.ok(
        w.services
          .get('agent-node-b')!
          .lines.some((l) => l.includes('duplicate delivery') && l.includes(original.commandId)),
        'the replay of the live command was skipped as a duplicate',
      );
      assert.ok(existsSync(victim), 'nothing ran');
      for (const m of ['m-forge-cmd-k', 'm-forge-cmd-s', 'm-forge-cmd-u', 'm-forge-cmd-c', 'm-forge-cmd-r'])
        assert.deepEqual(await w.events(m), [], `nothing written for ${m}`);
      assert.equal(
        (await w.events(r.migrationId)).length,
        eventsBefore,
        'nothing written for the first migration',
      );
      const rejected = await rejectedBy(w);
      assert.equal(rejected['node-agent@node-b'], 5, JSON.stringify(rejected));
      assert.equal(rejected['node-agent@node-a'], 1, JSON.stringify(rejected));
    });
  });
});
