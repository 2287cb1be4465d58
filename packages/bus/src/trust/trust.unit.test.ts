import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createUser, type KeyPair } from '@nats-io/nkeys';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { authorizeEvent, learn, newFacts } from './authority.ts';
import { createEventJudge, type RawEvent } from './event-judge.ts';
import {
  TrustConfigError,
  identityName,
  parseRegistry,
  registryFile,
  retireKey,
  type Registry,
  type Role,
} from './registry.ts';
import { signedBytes, signWith, verifyWith, verifyWithAsync, type HeaderReader } from './signature.ts';
import { createTrust, trustFromEnv } from './trust.ts';

const enc = new TextEncoder();
const who: { role: Role; node?: string }[] = [
  { role: 'coordinator' },
  { role: 'scheduler' },
  { role: 'ops' },
  { role: 'agent', node: 'node-a' },
  { role: 'agent', node: 'node-b' },
  { role: 'agent', node: 'node-c' },
  { role: 'streamer', node: 'node-a' },
  { role: 'streamer', node: 'node-b' },
];
const keys = new Map<string, KeyPair>(who.map((w) => [identityName(w.role, w.node), createUser()]));
const rawRegistry = {
  cluster: 'test',
  identities: who.map((w) => ({
    name: identityName(w.role, w.node),
    role: w.role,
    ...(w.node ? { node: w.node } : {}),
    publicKey: keys.get(identityName(w.role, w.node))!.getPublicKey(),
  })),
};
const registry: Registry = parseRegistry(rawRegistry);
const trustOf = (name: string) => createTrust(registry, keys.get(name));
const identity = (name: string) => registry.identities.find((i) => i.name === name)!;
const asHeaders = (h: Record<string, string> | undefined): HeaderReader => ({ get: (k) => h?.[k] ?? '' });
/** A judge's readBack over `log`: the messages after `after`, judged in order, as a read of the stream would. */
const readingBack =
  (judge: ReturnType<typeof createEventJudge>, log: readonly RawEvent[]) =>
  (m: string, after: number): Promise<void> => (
    judge.inOrder(
      m,
      after,
      log.filter((r) => r.seq > after),
    ),
    Promise.resolve()
  );
/** `name`'s trust, and how many signatures it checked (trust.verify) so far. */
const countedTrust = (name: string) => {
  const t = trustOf(name);
  const c = { checks: 0, trust: Object.create(t) as typeof t };
  Object.defineProperty(c.trust, 'verify', {
    value: (...a: Parameters<typeof t.verify>) => (c.checks++, t.verify(...a)),
  });
  return c;
};
/** The field the TrustConfigError that `fn` throws names (fails when it throws nothing). */
const fieldOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof TrustConfigError);
    return err.field;
  }
  assert.fail('accepted');
};

describe('the registry (identities.json)', () => {
  const broken = (mutate: (r: { cluster?: unknown; identities: Record<string, unknown>[] }) => void) => {
    const r = JSON.parse(JSON.stringify(rawRegistry)) as {
      cluster?: unknown;
      identities: Record<string, unknown>[];
    };
    mutate(r);
    return fieldOf(() => parseRegistry(r));
  };
  it('names the field that is wrong', () => {
    assert.equal(
      broken((r) => delete r.cluster),
      'cluster',
    );
    assert.equal(
      broken((r) => (r.identities[3]!['role'] = 'root')),
      'identities[3].role',
    );
    assert.equal(
      broken((r) => delete r.identities[3]!['node']),
      'identities[3].node',
    );
    assert.equal(
      broken((r) => (r.identities[0]!['node'] = 'node-a')),
      'identities[0].node',
    );
    assert.equal(
      broken((r) => (r.identities[3]!['name'] = 'agent@node-z')),
      'identities[3].name',
    );
    assert.equal(
      broken((r) => (r.identities[1]!['publicKey'] = 'SUAAAA')),
      'identities[1].publicKey',
    );
    assert.equal(
      broken((r) => (r.identities[2]!['publicKey'] = r.identities[1]!['publicKey'])),
      'identities[2].publicKey',
    );
    assert.equal(
      broken((r) => r.identities.push({ ...r.identities[0]! })),
      'identities[8].name',
    );
  });
});

describe('signatures over subject and body', () => {
  const body = enc.encode('{"a":1}');
  const h = asHeaders(signWith(keys.get('coordinator')!, 'haul.cmd.node-a.agent', body));
  it('verify says who signed', () => {
    const v = verifyWith(registry, 'haul.cmd.node-a.agent', body, h);
    assert.deepEqual(v, { ok: true, identity: identity('coordinator') });
  });
  it('are the signatures of nkeys itself (Ed25519, RFC 8032), both ways', () => {
    const kp = keys.get('coordinator')!;
    const ours = signWith(kp, 'haul.cmd.node-a.agent', body);
    const bytes = signedBytes('haul.cmd.node-a.agent', body);
    assert.ok(kp.verify(bytes, Buffer.from(ours['Haul-Signature'], 'base64url')), 'nkeys checks ours');
    const theirs = Buffer.from(kp.sign(bytes)).toString('base64url');
    assert.equal(theirs, ours['Haul-Signature'], 'Ed25519 signatures are deterministic');
    const v = verifyWith(
      registry,
      'haul.cmd.node-a.agent',
      body,
      asHeaders({ ...ours, 'Haul-Signature': theirs }),
    );
    assert.equal(v.ok, true, 'we check theirs');
  });
  it('another subject, another body, no headers, an unknown key: not believed', () => {
    assert.equal(verifyWith(registry, 'haul.cmd.node-b.agent', body, h).ok, false);
    assert.equal(verifyWith(registry, 'haul.cmd.node-a.agent', enc.encode('{"a":2}'), h).ok, false);
    assert.deepEqual(verifyWith(registry, 'haul.cmd.node-a.agent', body, undefined), {
      ok: false,
      reason: 'unsigned',
    });
    const stranger = asHeaders(signWith(createUser(), 'haul.cmd.node-a.agent', body));
    assert.match(String(verifyWith(registry, 'haul.cmd.node-a.agent', body, stranger).ok), /false/);
  });
  it("verifyWithAsync gives verifyWith's verdict in every case, off the calling thread", async () => {
    const forged = signWith(keys.get('scheduler')!, 'haul.cmd.node-a.agent', body);
    forged['Haul-Signer'] = keys.get('coordinator')!.getPublicKey();
    const cases: [string, Uint8Array, HeaderReader | undefined][] = [
      ['haul.cmd.node-a.agent', body, h],
      ['haul.cmd.node-b.agent', body, h],
      ['haul.cmd.node-a.agent', enc.encode('{"a":2}'), h],
      ['haul.cmd.node-a.agent', body, undefined],
      ['haul.cmd.node-a.agent', body, asHeaders(signWith(createUser(), 'haul.cmd.node-a.agent', body))],
      ['haul.cmd.node-a.agent', body, asHeaders(forged)],
      ['haul.cmd.node-a.agent', body, asHeaders({ ...forged, 'Haul-Signature': 'c2hvcnQ' })],
    ];
    for (const [subject, b, headers] of cases)
      assert.deepEqual(
        await verifyWithAsync(registry, subject, b, headers),
        verifyWith(registry, subject, b, headers),
        subject,
      );
    assert.equal((await verifyWithAsync(registry, 'haul.cmd.node-a.agent', body, h)).ok, true);
  });
  it('a registered key with a signature made by another key: not believed, the claimed signer named', () => {
    const forged = signWith(keys.get('scheduler')!, 'haul.cmd.node-a.agent', body);
    forged['Haul-Signer'] = keys.get('coordinator')!.getPublicKey();
    const v = verifyWith(registry, 'haul.cmd.node-a.agent', body, asHeaders(forged));
    assert.deepEqual(v, {
      ok: false,
      reason: 'the signature does not match the subject and body',
      claimed: 'coordinator',
    });
  });
});

const mid = 'm-trust-0001';
const cmd = (
  step: StepCommand['step'],
  node: string,
  executor: 'agent' | 'streamer' = 'agent',
): StepCommand =>
  ({
    commandId: `${mid}:${step}:-:1`,
    migrationId: mid,
    node,
    executor,
    attempt: 1,
    step,
    args: step === 'restore' ? { ctid: '101', imageDir: '/img/x', workDir: '/img/w' } : { ctid: '101' },
    timeoutMs: 30_000,
  }) as unknown as StepCommand;
const ev = (
  type: MigrationEvent['type'],
  actor: MigrationEvent['actor'],
  data: unknown,
  id = type,
): MigrationEvent =>
  ({
    eventId: `${mid}:${id}`,
    migrationId: mid,
    type,
    actor,
    time: new Date().toISOString(),
    schemaVersion: 1,
    data,
  }) as MigrationEvent;
const coord = { service: 'coordinator', node: 'c1' } as const;
const agentOn = (node: string) => ({ service: 'node-agent', node }) as const;
const requested = ev('MigrationRequested', coord, {
  request: { requestId: 'r1', ctid: '101', source: 'node-a', target: 'node-b' },
  imageRoots: { source: '/a', target: '/b' },
});
const restore = cmd('restore', 'node-b');
const succeeded = (c: StepCommand, actor: MigrationEvent['actor']) =>
  ev('StepSucceeded', actor, {
    commandId: c.commandId,
    step: c.step,
    node: actor.node,
    attempt: 1,
    result: { actions: [] },
  });

describe('refused messages, counted', () => {
  it('a stored message met again (a read, a redelivery) is counted once; a request never stored, each time', () => {
    const t = trustOf('ops');
    for (let i = 0; i < 3; i++)
      t.reject({ kind: 'command', subject: 'haul.cmd.node-a.agent', seq: 7, reason: 'x' });
    assert.equal(t.rejections, 1);
    for (let i = 0; i < 3; i++)
      t.reject({ kind: 'command', subject: 'haul.stream.node-b.offer', reason: 'x' });
    assert.equal(t.rejections, 4);
  });
});

describe('who may have written an event', () => {
  const facts = newFacts();
  learn(facts, 1, requested);
  learn(facts, 2, ev('StepIntended', coord, restore));
  const may = (name: string, e: MigrationEvent, seq = 10) => authorizeEvent(identity(name), e, seq, facts).ok;

  it("a step's outcome: only the executor its command was addressed to", () => {
    assert.equal(may('agent@node-b', succeeded(restore, agentOn('node-b'))), true);
    assert.equal(may('agent@node-c', succeeded(restore, agentOn('node-c'))), false, 'another node');
    assert.equal(may('agent@node-c', succeeded(restore, agentOn('node-b'))), false, 'claims another actor');
    assert.equal(
      may('streamer@node-b', succeeded(restore, { service: 'image-streamer', node: 'node-b' })),
      false,
    );
    assert.equal(may('scheduler', succeeded(restore, agentOn('node-b'))), false);
    assert.equal(may('agent@node-b', succeeded(restore, agentOn('node-b')), 2), false, 'before its intent');
    assert.equal(
      may('agent@node-b', succeeded(cmd('preDump', 'node-b'), agentOn('node-b'))),
      false,
      'no such intent',
    );
  });
  it('RestoreStarted: only for a restore command, by its addressee', () => {
    const started = ev('RestoreStarted', agentOn('node-b'), { commandId: restore.commandId });
    assert.equal(may('agent@node-b', started), true);
    assert.equal(may('agent@node-a', { ...started, actor: agentOn('node-a') }), false);
  });
  it("the coordinator's decisions: the coordinator only; its StepFailed (a step given up) too", () => {
    const done = ev('MigrationCompleted', coord, { stats: {} });
    assert.equal(may('coordinator', done), true);
    assert.equal(may('scheduler', done), false);
    assert.equal(may('agent@node-b', { ...done, actor: agentOn('node-b') }), false);
    const gaveUp = ev('StepFailed', coord, {
      commandId: restore.commandId,
      step: 'restore',
      node: 'node-b',
      attempt: 1,
      error: { code: 'HAUL_STEP_TIMEOUT', message: 'x' },
    });
    assert.equal(may('coordinator', gaveUp), true);
    assert.equal(
      may('coordinator', succeeded(restore, coord)),
      false,
      'no outcome of success by the coordinator',
    );
  });
  it("ResumedOnSource without a command: the source's agent only", () => {
    const resumed = (node: string) => ev('ResumedOnSource', agentOn(node), { reason: 'lease-expired' });
    assert.equal(may('agent@node-a', resumed('node-a')), true);
    assert.equal(may('agent@node-b', resumed('node-b')), false);
  });
});

describe('the judge of a log', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  let seq = 0;
  const signed = (name: string | undefined, e: MigrationEvent): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    const h = name ? signWith(keys.get(name)!, subject, data) : undefined;
    return { subject, seq: ++seq, data, headers: asHeaders(h) };
  };
  it('skips forged and unsigned events, reports each once, and believes the rest in order', () => {
    const reader = trustOf('ops');
    const invalid: string[] = [];
    const judge = createEventJudge(reader, validators, (_seq, m) => invalid.push(m));
    const log = [
      signed('coordinator', requested),
      signed('scheduler', succeeded(restore, agentOn('node-b'))), // before the intent, and by a scheduler
      signed('coordinator', ev('StepIntended', coord, restore)),
      signed(undefined, ev('CancelRequested', coord, { reason: 'unsigned' })),
      signed('agent@node-c', succeeded(restore, agentOn('node-c'))),
      signed('agent@node-b', succeeded(restore, agentOn('node-b'))),
    ];
    const believed = judge.inOrder(mid, 0, log).map((e) => e.seq);
    assert.deepEqual(invalid, []);
    assert.deepEqual(believed, [log[0]!.seq, log[2]!.seq, log[5]!.seq]);
    assert.equal(reader.rejections, 3);
    judge.inOrder(mid, 0, log);
    assert.equal(reader.rejections, 3, 'a second read reports nothing new');
  });
});

describe('a judge that meets a message alone', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  const raw = (name: string | undefined, e: MigrationEvent, seq: number): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    return {
      subject,
      seq,
      data,
      headers: asHeaders(name ? signWith(keys.get(name)!, subject, data) : undefined),
    };
  };
  const log = [raw('coordinator', requested, 1), raw('coordinator', ev('StepIntended', coord, restore), 2)];
  it('reads the log back for the facts of a signed outcome it cannot place, never for an unsigned one', async () => {
    const judge = createEventJudge(trustOf('coordinator'), validators, () => {});
    const readBacks: number[] = [];
    const readBack = (m: string, after: number) => (readBacks.push(after), readingBack(judge, log)(m, after));
    const unsigned = await judge.single(raw(undefined, succeeded(restore, agentOn('node-b')), 3), readBack);
    assert.equal(unsigned, undefined);
    assert.deepEqual(readBacks, [], 'an unsigned message costs no read');
    const real = await judge.single(raw('agent@node-b', succeeded(restore, agentOn('node-b')), 4), readBack);
    assert.equal(real?.seq, 4);
    assert.deepEqual(readBacks, [0]);
  });
});

describe('a judge whose reads overlap (a busy coordinator)', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  const raw = (name: string, e: MigrationEvent, seq: number): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    return { subject, seq, data, headers: asHeaders(signWith(keys.get(name)!, subject, data)) };
  };
  const intent = raw('coordinator', ev('StepIntended', coord, restore), 2);
  const outcome = raw('agent@node-b', succeeded(restore, agentOn('node-b')), 3);
  it('given a whole read that ends before an intent it finishes after, when the outcome is read from what was covered, then it is believed', () => {
    const judge = createEventJudge(trustOf('coordinator'), validators, () => {});
    judge.inOrder(mid, 0, [raw('coordinator', requested, 1), intent]);
    const from = judge.coveredFrom(mid, 2); // a read of what follows 2 starts…
    judge.inOrder(mid, 0, [raw('coordinator', requested, 1)]); // …a whole read that began before 2 ends…
    assert.deepEqual(
      judge.inOrder(mid, from, [outcome]).map((e) => e.seq),
      [3],
      '…and the facts still hold the intent',
    );
  });
  it('given a follow of the subject from what was judged, then what it judges counts as judged; a follow past a gap, or of a migration forgotten, does not', async () => {
    const judge = createEventJudge(trustOf('coordinator'), validators, () => {});
    judge.inOrder(mid, 0, [raw('coordinator', requested, 1)]);
    // A follow from 2: the intent, then the outcome, each judged alone
    await judge.single(intent, () => Promise.resolve());
    judge.followed(mid, 1, 2);
    assert.equal(judge.covered(mid), 2);
    await judge.single(outcome, () => Promise.resolve());
    judge.followed(mid, 2, 3);
    assert.equal(judge.covered(mid), 3, 'a read after it starts after 3');
    judge.followed(mid, 5, 7);
    assert.equal(judge.covered(mid), 3, 'messages 4 and 5 were never judged');
    judge.followed('m-never-read', 0, 1);
    assert.equal(judge.covered('m-never-read'), 0);
  });
  it('given an append the facts did not cover up to its expected sequence when it was acked, then what lies before it is read back for its outcome', async () => {
    const judge = createEventJudge(trustOf('coordinator'), validators, () => {});
    judge.appended(4, ev('IterationDecided', coord, { iteration: 1, decision: 'final' }), 3);
    assert.equal(judge.covered(mid), 0, 'not covered: 1 to 3 were never judged');
    const log = [raw('coordinator', requested, 1), intent, outcome];
    const readBack = readingBack(judge, log);
    assert.equal((await judge.single(outcome, readBack))?.seq, 3);
  });
  it('given one intent learnt at a later sequence first, then an earlier one: the command counts from the earlier', () => {
    const facts = newFacts();
    learn(facts, 1, requested);
    learn(facts, 5, ev('StepIntended', coord, restore));
    learn(facts, 2, ev('StepIntended', coord, restore));
    assert.equal(
      authorizeEvent(identity('agent@node-b'), succeeded(restore, agentOn('node-b')), 3, facts).ok,
      true,
    );
  });
});

describe('a judge and the events its own process appended', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  const counted = () => countedTrust('coordinator');
  const copy = (data: Uint8Array, seq: number, sig?: Record<string, string>): RawEvent => ({
    subject,
    seq,
    data,
    headers: asHeaders(sig),
  });
  const noReadBack = () => Promise.reject(new Error('no read back expected'));
  /** A coordinator's judge about to append `e`, signed by it, with the trust that counts its signature checks. */
  const appending = (e: MigrationEvent) => {
    const c = counted();
    const judge = createEventJudge(c.trust, validators, () => {});
    const body = enc.encode(JSON.stringify(e));
    const sig = c.trust.sign(subject, body);
    judge.signing(e, body, sig);
    return { c, judge, body, sig };
  };
  it('given an event being appended, when the consumer delivers its very bytes and signature, then it is believed without a signature check, and so is a redelivery of that message; a copy stored at another sequence is checked', async () => {
    const { c, judge, body, sig } = appending(requested);
    assert.equal((await judge.single(copy(body, 7, sig), noReadBack, requested))?.seq, 7);
    assert.equal(c.checks, 0);
    assert.equal((await judge.single(copy(body, 7, sig), noReadBack))?.seq, 7, 'a redelivery is believed…');
    assert.equal(c.checks, 0, '…as the message met already');
    assert.equal((await judge.single(copy(body, 8, sig), noReadBack))?.seq, 8, 'a copy stored again…');
    assert.equal(c.checks, 1, '…is believed on its checked signature');
  });
  it('given an event appended and acked first, when the consumer delivers its very bytes after, then it is believed without a second signature check', async () => {
    const { c, judge, body, sig } = appending(requested);
    judge.appended(1, requested, 0);
    assert.equal(judge.covered(mid), 1, 'the append covers it');
    assert.equal((await judge.single(copy(body, 1, sig), noReadBack, requested))?.seq, 1);
    assert.equal(c.checks, 0);
  });
  it('given an event being appended, when a copy of its bytes comes unsigned or signed by another key, then it is judged as any message', async () => {
    const c = counted();
    const judge = createEventJudge(c.trust, validators, () => {});
    const body = enc.encode(JSON.stringify(requested));
    judge.signing(requested, body, c.trust.sign(subject, body));
    assert.equal(await judge.single(copy(body, 8), noReadBack), undefined, 'unsigned');
    const byAgent = signWith(keys.get('agent@node-a')!, subject, body);
    assert.equal(await judge.single(copy(body, 9, byAgent), noReadBack), undefined, 'signed by an agent');
    assert.equal(c.checks, 2);
    assert.equal(c.trust.rejections, 2);
  });
  it('given an event being appended, when other bytes come with its id and its signature, then they are refused', async () => {
    const { c, judge, sig } = appending(requested);
    const changed = { ...requested, time: '2026-01-01T00:00:00.000Z' } as MigrationEvent;
    assert.equal(
      await judge.single(copy(enc.encode(JSON.stringify(changed)), 10, sig), noReadBack),
      undefined,
    );
    assert.equal(c.checks, 1);
    assert.equal(c.trust.rejections, 1);
  });
  it('given an executor event being appended, then its own bytes are still authorized like any event', async () => {
    const { c, judge, body, sig } = appending(succeeded(restore, agentOn('node-b')));
    assert.equal(
      await judge.single(copy(body, 11, sig), () => Promise.resolve()),
      undefined,
      'a coordinator may not write it',
    );
    assert.equal(c.checks, 1, 'checked once to decide whether the facts are worth reading, never as its own');
  });
  it('factFree believes a coordinator event on its signature alone and nothing an executor wrote', () => {
    const judge = createEventJudge(trustOf('ops'), validators, () => {});
    const at = (name: string, e: MigrationEvent, seq: number): RawEvent => {
      const data = enc.encode(JSON.stringify(e));
      return { subject, seq, data, headers: asHeaders(signWith(keys.get(name)!, subject, data)) };
    };
    const completed = ev('CancelRequested', coord, { reason: 'window over' });
    assert.equal(judge.factFree(at('coordinator', completed, 30))?.seq, 30);
    assert.equal(
      judge.factFree(at('agent@node-b', completed, 31)),
      undefined,
      'a coordinator event an agent signed',
    );
    assert.equal(judge.factFree(at('agent@node-b', succeeded(restore, agentOn('node-b')), 32)), undefined);
  });
});

describe('the golden logs, each event signed by its actor', () => {
  const validators = createValidators();
  const golden = join(import.meta.dirname, '..', '..', '..', '..', 'test', 'fixtures', 'logs');
  const signerOf = (a: MigrationEvent['actor']) =>
    a.service === 'coordinator'
      ? 'coordinator'
      : `${a.service === 'node-agent' ? 'agent' : 'streamer'}@${a.node}`;
  for (const file of readdirSync(golden).filter((f) => f.endsWith('.jsonl')))
    it(`believes every event of ${file}`, () => {
      const events = readFileSync(join(golden, file), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as MigrationEvent);
      const reader = trustOf('ops');
      const refused: string[] = [];
      const judge = createEventJudge(reader, validators, (seq, m) => refused.push(`${seq}: ${m}`));
      const raws = events.map((e, i): RawEvent => {
        const subject = `haul.events.${e.migrationId}`;
        const data = enc.encode(JSON.stringify(e));
        return {
          subject,
          seq: i + 1,
          data,
          headers: asHeaders(signWith(keys.get(signerOf(e.actor))!, subject, data)),
        };
      });
      const believed = judge.inOrder(events[0]!.migrationId, 0, raws);
      assert.deepEqual(refused, []);
      assert.equal(reader.rejections, 0);
      assert.equal(believed.length, events.length);
    });
});

describe('retired keys (haul rotate-key)', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  // agent@node-b signed with `old` up to event sequence 10, then was rotated to `fresh`; so was the coordinator.
  const old = keys.get('agent@node-b')!;
  const fresh = createUser();
  const oldCoordinator = keys.get('coordinator')!;
  const newCoordinator = createUser();
  const rotated = retireKey(
    retireKey(registry, 'agent@node-b', fresh.getPublicKey(), 10),
    'coordinator',
    newCoordinator.getPublicKey(),
    10,
  );
  const raw = (kp: KeyPair, e: MigrationEvent, seq: number): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    return { subject, seq, data, headers: asHeaders(signWith(kp, subject, data)) };
  };
  const registryField = (r: unknown) => fieldOf(() => parseRegistry(r));
  const withRetired = (i: number, retiredKeys: unknown) => {
    const r = registryFile(registry) as { identities: Record<string, unknown>[] };
    r.identities[i]!['retiredKeys'] = retiredKeys;
    return r;
  };

  it('given a registry with retired keys, when one is malformed, then the error names its field', () => {
    const key = createUser().getPublicKey();
    assert.equal(registryField(withRetired(3, { publicKey: key })), 'identities[3].retiredKeys');
    assert.equal(
      registryField(withRetired(3, [{ publicKey: key }])),
      'identities[3].retiredKeys[0].eventsUpTo',
    );
    assert.equal(
      registryField(
        withRetired(3, [
          { publicKey: key, eventsUpTo: 1 },
          { publicKey: key, eventsUpTo: -1 },
        ]),
      ),
      'identities[3].retiredKeys[1].eventsUpTo',
    );
    assert.equal(
      registryField(withRetired(3, [{ publicKey: key, eventsUpTo: 1.5 }])),
      'identities[3].retiredKeys[0].eventsUpTo',
    );
    assert.equal(
      registryField(withRetired(3, [{ publicKey: key, eventsUpTo: '7' }])),
      'identities[3].retiredKeys[0].eventsUpTo',
    );
    assert.equal(
      registryField(withRetired(3, [{ publicKey: 'SUAAAA', eventsUpTo: 1 }])),
      'identities[3].retiredKeys[0].publicKey',
    );
  });

  it('given a registry, when a key is both current and retired, or retired twice, then it is refused there', () => {
    const own = registry.identities[3]!.publicKey;
    const other = registry.identities[0]!.publicKey;
    const key = createUser().getPublicKey();
    assert.equal(
      registryField(withRetired(3, [{ publicKey: own, eventsUpTo: 1 }])),
      'identities[3].retiredKeys[0].publicKey',
    );
    assert.equal(
      registryField(withRetired(3, [{ publicKey: other, eventsUpTo: 1 }])),
      'identities[3].retiredKeys[0].publicKey',
    );
    assert.equal(
      registryField(
        withRetired(3, [
          { publicKey: key, eventsUpTo: 1 },
          { publicKey: key, eventsUpTo: 2 },
        ]),
      ),
      'identities[3].retiredKeys[1].publicKey',
    );
    const r = withRetired(1, [{ publicKey: key, eventsUpTo: 1 }]);
    r.identities[2]!['publicKey'] = key;
    assert.equal(
      registryField(r),
      'identities[2].publicKey',
      "another identity's retired key as a current key",
    );
  });

  it('given a rotation, then the old key is retired in the registry file and read back the same', () => {
    const b = rotated.identities.find((i) => i.name === 'agent@node-b')!;
    assert.equal(b.publicKey, fresh.getPublicKey());
    assert.deepEqual(b.retiredKeys, [{ publicKey: old.getPublicKey(), eventsUpTo: 10 }]);
    assert.deepEqual(parseRegistry(JSON.parse(JSON.stringify(registryFile(rotated)))), rotated);
    const again = retireKey(rotated, 'agent@node-b', createUser().getPublicKey(), 25);
    assert.deepEqual(
      again.identities.find((i) => i.name === 'agent@node-b')!.retiredKeys?.map((k) => k.eventsUpTo),
      [10, 25],
    );
  });

  it('given a key retired at 10, when it would be rotated again below 10 or an unknown identity is named, then it is refused', () => {
    assert.throws(
      () => retireKey(rotated, 'agent@node-b', createUser().getPublicKey(), 9),
      /retired at event sequence 10/,
    );
    assert.throws(
      () => retireKey(rotated, 'agent@node-z', createUser().getPublicKey(), 9),
      /no identity agent@node-z/,
    );
  });

  it('given a key retired at 10, when it signed an event stored at 10 or before, then it is believed as its identity', () => {
    const h = asHeaders(signWith(old, subject, enc.encode('{}')));
    assert.deepEqual(verifyWith(rotated, subject, enc.encode('{}'), h, 10), {
      ok: true,
      identity: rotated.identities.find((i) => i.name === 'agent@node-b'),
    });
    assert.equal(verifyWith(rotated, subject, enc.encode('{}'), h, 1).ok, true);
  });

  it('given a key retired at 10, when it signed an event stored after 10, then it is refused, saying up to where it is believed', async () => {
    const h = asHeaders(signWith(old, subject, enc.encode('{}')));
    const refused = {
      ok: false,
      reason: "signed by agent@node-b's retired key, believed only up to event sequence 10, not at 11",
      claimed: 'agent@node-b',
    };
    assert.deepEqual(verifyWith(rotated, subject, enc.encode('{}'), h, 11), refused);
    assert.deepEqual(await verifyWithAsync(rotated, subject, enc.encode('{}'), h, 11), refused);
    assert.equal((await verifyWithAsync(rotated, subject, enc.encode('{}'), h, 10)).ok, true);
  });

  it('given a retired key, when it signed a command, a request or an inspection (no event sequence), then it is refused', () => {
    const body = enc.encode('{"a":1}');
    const v = verifyWith(
      rotated,
      'haul.cmd.node-b.agent',
      body,
      asHeaders(signWith(oldCoordinator, 'haul.cmd.node-b.agent', body)),
    );
    assert.equal(v.ok, false);
    assert.match(
      !v.ok ? v.reason : '',
      /coordinator's retired key, believed only up to event sequence 10, and for no command/,
    );
    const current = signWith(newCoordinator, 'haul.cmd.node-b.agent', body);
    assert.equal(
      verifyWith(rotated, 'haul.cmd.node-b.agent', body, asHeaders(current)).ok,
      true,
      'its new key',
    );
    assert.equal(
      verifyWith(rotated, subject, body, asHeaders(signWith(newCoordinator, subject, body)), 3).ok,
      true,
      'its new key, any event',
    );
  });

  it('given a retired key, when it signs with a forged signature within its range, then it is still refused', () => {
    const forged = signWith(keys.get('scheduler')!, subject, enc.encode('{}'));
    forged['Haul-Signer'] = old.getPublicKey();
    assert.equal(verifyWith(rotated, subject, enc.encode('{}'), asHeaders(forged), 5).ok, false);
  });

  it('given a rotated log, when a reader reads it in order, then it believes the old key up to 10, the new key after, and nothing the old key signed later', () => {
    const reader = createTrust(rotated, keys.get('ops'));
    const judge = createEventJudge(reader, validators, () => {});
    const log = [
      raw(oldCoordinator, requested, 1),
      raw(oldCoordinator, ev('StepIntended', coord, restore), 2),
      raw(old, succeeded(restore, agentOn('node-b')), 10),
      raw(old, succeeded(restore, agentOn('node-b')), 11),
      raw(fresh, succeeded(restore, agentOn('node-b')), 12),
      raw(oldCoordinator, ev('CancelRequested', coord, { reason: 'after the rotation' }), 13),
    ];
    assert.deepEqual(
      judge.inOrder(mid, 0, log).map((e) => e.seq),
      [1, 2, 10, 12],
    );
    assert.equal(reader.rejections, 2);
  });

  it('given a rotated log, when a reader meets its messages alone, then the same holds (single and factFree)', async () => {
    const reader = createTrust(rotated, keys.get('ops'));
    const judge = createEventJudge(reader, validators, () => {});
    const history = [
      raw(oldCoordinator, requested, 1),
      raw(oldCoordinator, ev('StepIntended', coord, restore), 2),
    ];
    const readBack = readingBack(judge, history);
    assert.equal((await judge.single(raw(old, succeeded(restore, agentOn('node-b')), 9), readBack))?.seq, 9);
    assert.equal(
      await judge.single(raw(old, succeeded(restore, agentOn('node-b')), 11), readBack),
      undefined,
    );
    assert.equal(
      (await judge.single(raw(fresh, succeeded(restore, agentOn('node-b')), 12), readBack))?.seq,
      12,
    );
    const cancel = ev('CancelRequested', coord, { reason: 'window over' });
    assert.equal(judge.factFree(raw(oldCoordinator, cancel, 10))?.seq, 10);
    assert.equal(judge.factFree(raw(oldCoordinator, cancel, 14)), undefined);
    assert.equal(judge.factFree(raw(newCoordinator, cancel, 15))?.seq, 15);
    assert.equal(reader.rejections, 2);
  });

  it('given a retired seed, when a service starts with it, then it is told to use its new seed', () => {
    assert.throws(
      () => createTrust(rotated, old),
      (err: unknown) =>
        err instanceof TrustConfigError &&
        err.field === 'HAUL_NKEY_SEED_FILE' &&
        /agent@node-b's retired key/.test(err.message),
    );
    assert.equal(createTrust(rotated, fresh).identity?.name, 'agent@node-b');
  });
});

describe('trust from the environment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haul-trust-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'identities.json');
  writeFileSync(file, JSON.stringify(rawRegistry));
  const seed = (name: string) => {
    const f = join(dir, `${name}.nk`);
    writeFileSync(f, new TextDecoder().decode(keys.get(name)!.getSeed()));
    return f;
  };
  it('a service gets its identity; a missing or foreign setting is a TrustConfigError naming it', () => {
    const env = { HAUL_IDENTITIES_FILE: file, HAUL_NKEY_SEED_FILE: seed('agent@node-a') };
    assert.equal(
      trustFromEnv({ role: 'agent', node: 'node-a' }, undefined, env).identity?.name,
      'agent@node-a',
    );
    assert.equal(
      fieldOf(() => trustFromEnv({ role: 'agent', node: 'node-b' }, undefined, env)),
      'HAUL_NKEY_SEED_FILE',
    );
    assert.equal(
      fieldOf(() => trustFromEnv({ role: 'coordinator' }, undefined, {})),
      'HAUL_IDENTITIES_FILE',
    );
    assert.equal(
      fieldOf(() => trustFromEnv({ role: 'coordinator' }, undefined, { HAUL_IDENTITIES_FILE: file })),
      'HAUL_NKEY_SEED_FILE',
    );
    writeFileSync(join(dir, 'bad.json'), '{"cluster":"x","identities":[{"name":"ops","role":"ops"}]}');
    assert.equal(
      fieldOf(() => trustFromEnv('reader', undefined, { HAUL_IDENTITIES_FILE: join(dir, 'bad.json') })),
      'identities[0].publicKey',
    );
  });
  it('HAUL_INSECURE=1 signs and checks nothing', () => {
    const t = trustFromEnv({ role: 'coordinator' }, undefined, { HAUL_INSECURE: '1' });
    assert.equal(t.secure, false);
    assert.equal(t.sign('s', enc.encode('x')), undefined);
    assert.equal(t.verify('s', enc.encode('x'), undefined).ok, true);
  });
});

describe('a judge that meets a message again', () => {
  const validators = createValidators();
  const subject = `haul.events.${mid}`;
  const raw = (name: string, e: MigrationEvent, seq: number): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    return { subject, seq, data, headers: asHeaders(signWith(keys.get(name)!, subject, data)) };
  };
  /** The same message as another reader of the stream gets it: in a buffer of its own. */
  const again = (r: RawEvent): RawEvent => ({ ...r, data: Uint8Array.from(r.data) });
  const log = [raw('coordinator', requested, 1), raw('coordinator', ev('StepIntended', coord, restore), 2)];
  const outcome = raw('agent@node-b', succeeded(restore, agentOn('node-b')), 3);

  it('given a read that judged the log, when a follow delivers the same messages, then they are believed without a second signature check', async () => {
    const c = countedTrust('agent@node-b');
    const judge = createEventJudge(c.trust, validators, () => {});
    assert.equal(judge.inOrder(mid, 0, log).length, 2);
    assert.equal(c.checks, 2);
    for (const r of log) assert.equal((await judge.single(again(r), () => Promise.resolve()))?.seq, r.seq);
    assert.equal(c.checks, 2);
  });
  it('given a message judged, when other bytes, another signature or another subject come at its sequence, then each is checked and refused', () => {
    const c = countedTrust('agent@node-b');
    const judge = createEventJudge(c.trust, validators, () => {});
    judge.inOrder(mid, 0, log);
    const intent = log[1]!;
    const cancel = enc.encode(JSON.stringify(ev('CancelRequested', coord, { reason: 'forged' })));
    const otherBytes = { ...intent, data: cancel };
    const otherSignature = {
      ...intent,
      headers: asHeaders(signWith(keys.get('agent@node-a')!, subject, intent.data)),
    };
    const otherSubject = { ...intent, subject: 'haul.events.m-other' };
    for (const forged of [otherBytes, otherSignature, otherSubject])
      assert.deepEqual(judge.inOrder(mid, 1, [forged]), []);
    assert.equal(
      c.checks,
      4,
      'the two messages, then otherBytes and otherSignature (another subject is refused first)',
    );
    assert.equal(c.trust.rejections, 3);
  });
  it('given a signed outcome whose facts are missing, when it is met alone, then its signature is checked once, not again once the facts are read', async () => {
    const c = countedTrust('coordinator');
    const judge = createEventJudge(c.trust, validators, () => {});
    const readBack = readingBack(judge, log);
    assert.equal((await judge.single(outcome, readBack))?.seq, 3);
    assert.equal(c.checks, 3, 'the outcome once, and the two messages read back');
  });
  it('given a message whose signature does not hold, when it comes again, then it is checked again', () => {
    const c = countedTrust('agent@node-b');
    const judge = createEventJudge(c.trust, validators, () => {});
    const bad = {
      ...log[0]!,
      headers: asHeaders({ ...signWith(keys.get('coordinator')!, subject, enc.encode('{}')) }),
    };
    judge.inOrder(mid, 0, [bad]);
    judge.inOrder(mid, 0, [again(bad)]);
    assert.equal(c.checks, 2);
  });
});
