import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createUser, type KeyPair } from '@nats-io/nkeys';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { createEventJudge, type RawEvent } from './event-judge.ts';
import { identityName, parseRegistry, type Role } from './registry.ts';
import { extendChain, extendChainWith, newChain, sealDataOf, sealMatches, type SealData } from './seal.ts';
import { signWith, type HeaderReader } from './signature.ts';
import { createTrust, insecureTrust, type Trust } from './trust.ts';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const enc = new TextEncoder();
const who: { role: Role; node?: string }[] = [
  { role: 'coordinator' },
  { role: 'ops' },
  { role: 'agent', node: 'node-a' },
  { role: 'agent', node: 'node-b' },
];
const keys = new Map<string, KeyPair>(who.map((w) => [identityName(w.role, w.node), createUser()]));
const registry = parseRegistry({
  cluster: 'test',
  identities: who.map((w) => ({
    name: identityName(w.role, w.node),
    role: w.role,
    ...(w.node ? { node: w.node } : {}),
    publicKey: keys.get(identityName(w.role, w.node))!.getPublicKey(),
  })),
});
const validators = createValidators();
const mid = 'm-seal-0001';
const subject = `haul.events.${mid}`;
const asHeaders = (h: Record<string, string> | undefined): HeaderReader => ({ get: (k) => h?.[k] ?? '' });

/** A trust that counts the signatures it checks. */
function counting(name: string): { trust: Trust; checks: () => number } {
  const t = createTrust(registry, keys.get(name));
  let n = 0;
  const trust = Object.create(t) as Trust;
  Object.defineProperty(trust, 'verify', {
    value: (...a: Parameters<Trust['verify']>) => (n++, t.verify(...a)),
  });
  return { trust, checks: () => n };
}

const ev = (type: MigrationEvent['type'], actor: MigrationEvent['actor'], data: unknown, id: string) =>
  ({
    eventId: `${mid}:${id}`,
    migrationId: mid,
    type,
    actor,
    time: '2026-12-02T00:00:00.000Z',
    schemaVersion: 1,
    data,
  }) as MigrationEvent;
const coord = { service: 'coordinator', node: 'c1' } as const;
const agentB = { service: 'node-agent', node: 'node-b' } as const;
const restore = {
  commandId: `${mid}:restore:-:1`,
  migrationId: mid,
  node: 'node-b',
  executor: 'agent',
  attempt: 1,
  step: 'restore',
  args: { ctid: '101', imageDir: '/img/x', workDir: '/img/w' },
  timeoutMs: 30_000,
} as unknown as StepCommand;
const outcome = (node: string) => ({
  commandId: restore.commandId,
  step: 'restore',
  node,
  attempt: 1,
  result: { actions: [] },
});

/** A log as stored: messages at increasing sequences (other migrations' messages in between). */
function storedLog(
  entries: [signer: string | undefined, e: MigrationEvent][],
  first = 10,
): { raws: RawEvent[]; events: MigrationEvent[] } {
  const raws = entries.map(([name, e], i): RawEvent => {
    const data = enc.encode(JSON.stringify(e));
    const h = name ? signWith(keys.get(name)!, subject, data) : undefined;
    return { subject, seq: first + 3 * i, data, headers: asHeaders(h) };
  });
  return { raws, events: entries.map(([, e]) => e) };
}

/** A real MigrationCompleted's data (a golden log's), so the terminal event is a valid one. */
const goldenCompleted = readFileSync(join(repoRoot, 'test/fixtures/logs/live-shared-and-local.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as MigrationEvent)
  .find((e) => e.type === 'MigrationCompleted')!.data;
const completed = ev('MigrationCompleted', coord, goldenCompleted, 'completed');
const cleanLog = () =>
  storedLog([
    [
      'coordinator',
      ev(
        'MigrationRequested',
        coord,
        {
          request: { requestId: 'r1', ctid: '101', source: 'node-a', target: 'node-b' },
          imageRoots: { source: '/a', target: '/b' },
        },
        'requested',
      ),
    ],
    ['coordinator', ev('StepIntended', coord, restore, 'intent')],
    ['agent@node-b', ev('StepSucceeded', agentB, outcome('node-b'), 'result')],
    ['coordinator', completed],
  ]);

/** The seal message a coordinator appends for `data`, signed by `signer`, at `seq`. */
function sealMessage(data: SealData, seq: number, signer = 'coordinator') {
  const event = ev('MigrationSealed', coord, data, 'sealed') as Extract<
    MigrationEvent,
    { type: 'MigrationSealed' }
  >;
  const bytes = enc.encode(JSON.stringify(event));
  return {
    raw: { subject, seq, data: bytes, headers: asHeaders(signWith(keys.get(signer)!, subject, bytes)) },
    event,
  };
}

/** What the coordinator's judge makes of a log its consumer delivers in order: the seal it can write. */
async function coordinatorSeal(raws: RawEvent[], sealChains = true): Promise<SealData | undefined> {
  const judge = createEventJudge(createTrust(registry, keys.get('coordinator')), validators, () => {}, {
    sealChains,
  });
  for (const raw of raws) await judge.single(raw, () => Promise.resolve());
  return judge.sealOf(mid);
}

const withDecoded = (raws: RawEvent[]) =>
  raws.map((raw) => ({ raw, event: JSON.parse(new TextDecoder().decode(raw.data)) as MigrationEvent }));

describe('the seal chain', () => {
  it('given known messages, then the digest of the framing seal.ts defines (seals already written stay valid)', () => {
    // Computed once with the framing as first written (a fresh frame per message, the sequence as a BigInt): a
    // sequence above 2^32, an empty signer, a signer of two-byte characters and an empty body.
    const signer = (s: string) => ({ get: (k: string) => (k === 'Haul-Signer' ? s : '') });
    const c = newChain();
    extendChain(
      c,
      1,
      signer('UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4'),
      Buffer.from('{"a":1}'),
    );
    extendChain(c, 2 ** 32 + 5, undefined, new TextEncoder().encode('x'));
    extendChain(c, 7, signer('é'), new Uint8Array(0));
    assert.deepEqual(sealDataOf(c), {
      upToSeq: 7,
      events: 3,
      digest: 'sha256:b23e300451b088760bbf5a5f46af1643406dab0e65587c651cacff788f177cfc',
      fromSeq: 1,
      signers: ['', 'UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4', 'é'],
    });
  });

  it('given the same messages, then the same digest; a changed sequence, signer or byte changes it', () => {
    const { raws } = cleanLog();
    const digestOf = (rs: RawEvent[]) => {
      const c = newChain();
      for (const r of rs) extendChain(c, r.seq, r.headers, r.data);
      return sealDataOf(c);
    };
    const base = digestOf(raws);
    assert.deepEqual(digestOf(raws), base);
    assert.match(base.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(base.events, 4);
    assert.equal(base.upToSeq, raws.at(-1)!.seq);
    const moved = raws.map((r, i) => (i === 1 ? { ...r, seq: r.seq + 1 } : r));
    assert.notEqual(digestOf(moved).digest, base.digest, 'another sequence');
    const resigned = raws.map((r, i) =>
      i === 2 ? { ...r, headers: asHeaders(signWith(keys.get('agent@node-a')!, subject, r.data)) } : r,
    );
    assert.notEqual(digestOf(resigned).digest, base.digest, 'another signer');
    const flipped = raws.map((r, i) =>
      i === 3 ? { ...r, data: Uint8Array.from(r.data, (b, j) => (j === 5 ? b ^ 1 : b)) } : r,
    );
    assert.notEqual(digestOf(flipped).digest, base.digest, 'another byte');
  });

  it('given messages folded as a run, then the digest of folding them one by one, whatever their sizes', () => {
    const signer = (s: string) => ({ get: (k: string) => (k === 'Haul-Signer' ? s : '') });
    const known = newChain();
    extendChainWith(known, [
      {
        seq: 1,
        headers: signer('UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4'),
        data: Buffer.from('{"a":1}'),
      },
      { seq: 2 ** 32 + 5, data: new TextEncoder().encode('x') },
      { seq: 7, headers: signer('é'), data: new Uint8Array(0) },
    ]);
    assert.equal(
      sealDataOf(known).digest,
      'sha256:b23e300451b088760bbf5a5f46af1643406dab0e65587c651cacff788f177cfc',
    );
    // A log larger than the run's buffer (it grows), a run after single messages, and an empty run.
    const big = Array.from({ length: 40 }, (_, i) => ({
      seq: 10 + i,
      headers: signer(`U${i}`),
      data: Buffer.alloc(4000 + i, i),
    }));
    const one = newChain();
    const run = newChain();
    for (const m of big) extendChain(one, m.seq, m.headers, m.data);
    extendChain(run, big[0]!.seq, big[0]!.headers, big[0]!.data);
    extendChainWith(run, big.slice(1));
    extendChainWith(run, []);
    assert.deepEqual(sealDataOf(run), sealDataOf(one));
  });

  it('given a seal that names other signers than its messages had, then it vouches for nothing', () => {
    const { raws } = cleanLog();
    const c = newChain();
    for (const r of raws) extendChain(c, r.seq, r.headers, r.data);
    const seal = sealDataOf(c);
    const signers = seal.signers ?? [];
    assert.ok(signers.length >= 2, 'the clean log has several signers');
    assert.ok(sealMatches(seal, c));
    const { signers: _, ...older } = seal;
    assert.ok(sealMatches(older, c), 'a seal written before signers were named');
    assert.equal(sealMatches({ ...seal, signers: [signers[0]!] }, c), false, 'one left out');
    const other = createUser().getPublicKey();
    assert.equal(
      sealMatches({ ...seal, signers: [other, ...signers].sort() as [string] }, c),
      false,
      'one added',
    );
  });

  it('given a chain read from, then sealing it leaves it open for the next message', () => {
    const { raws } = cleanLog();
    const c = newChain();
    extendChain(c, raws[0]!.seq, raws[0]!.headers, raws[0]!.data);
    const first = sealDataOf(c);
    assert.ok(sealMatches(first, c));
    extendChain(c, raws[1]!.seq, raws[1]!.headers, raws[1]!.data);
    assert.equal(sealMatches(first, c), false);
    assert.equal(sealDataOf(c).events, 2);
  });
});

describe("the coordinator's chain", () => {
  it('given a log delivered in order, then its seal covers every message, from MigrationRequested to the last', async () => {
    const { raws } = cleanLog();
    const seal = await coordinatorSeal(raws);
    const all = newChain();
    for (const r of raws) extendChain(all, r.seq, r.headers, r.data);
    assert.deepEqual(seal, sealDataOf(all));
  });

  it('given a message delivered twice, then the chain folds it once', async () => {
    const { raws } = cleanLog();
    assert.deepEqual(
      await coordinatorSeal([...raws.slice(0, 3), raws[2]!, raws[3]!]),
      await coordinatorSeal(raws),
    );
  });

  it('given a reader that does not seal (an agent, a streamer, the CLI), then it keeps no chain', async () => {
    const { raws } = cleanLog();
    assert.notEqual(await coordinatorSeal(raws), undefined);
    assert.equal(await coordinatorSeal(raws, false), undefined);
  });

  it('given a log whose MigrationRequested it never met, then it has no seal to write', async () => {
    const { raws } = cleanLog();
    assert.equal(await coordinatorSeal(raws.slice(1)), undefined);
  });

  it('given a forgery in the log, then the chain leaves it out (the coordinator did not believe it)', async () => {
    const { raws } = cleanLog();
    const forged = storedLog(
      [
        [
          'agent@node-a',
          ev('StepSucceeded', { service: 'node-agent', node: 'node-a' }, outcome('node-a'), 'forged'),
        ],
      ],
      raws[2]!.seq + 1,
    ).raws[0]!;
    const withForgery = [...raws.slice(0, 3), forged, raws[3]!];
    assert.deepEqual(await coordinatorSeal(withForgery), await coordinatorSeal(raws));
  });
});

describe('a reader of a sealed log', () => {
  it('given a seal that names exactly the messages before it, then every event is believed on the seal alone', async () => {
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const seal = sealMessage(data, raws.at(-1)!.seq + 1);
    const out = judge.sealed(withDecoded(raws), seal);
    assert.deepEqual(
      out.map((e) => e.event),
      [...events, seal.event],
    );
    assert.equal(reader.checks(), 1, "only the seal's signature is checked");
  });

  it('given a seal that vouches for exactly these messages and a snapshot the reader accepts, then the seal alone is handed on, no message decoded', async () => {
    const { raws } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const seal = sealMessage(data, raws.at(-1)!.seq + 1);
    const held = raws.map((raw) => ({ raw }));
    const offered: number[] = [];
    const out = judge.sealed(held, seal, (s) => (offered.push(s.raw.seq), true));
    assert.deepEqual(out, [{ seq: seal.raw.seq, event: seal.event, snapshot: true }]);
    assert.deepEqual(offered, [seal.raw.seq]);
    assert.ok(
      held.every((m) => !('event' in m)),
      'no message decoded',
    );
    assert.equal(reader.checks(), 1, "only the seal's signature is checked");
  });

  it('given a snapshot the reader does not accept, then the events are handed on, believed on the seal', async () => {
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const seal = sealMessage(data, raws.at(-1)!.seq + 1);
    const out = judge.sealed(
      raws.map((raw) => ({ raw })),
      seal,
      () => false,
    );
    assert.deepEqual(
      out.map((e) => e.event),
      [...events, seal.event],
    );
    assert.equal(reader.checks(), 1);
  });

  it("given a vouched seal over a message whose key the reader's registry does not hold, then no snapshot is offered and that message is refused", async () => {
    // The coordinator's registry still holds node-b's agent key; this reader's no longer does (a key rotated away).
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const readerRegistry = parseRegistry({
      cluster: 'test',
      identities: who
        .filter((w) => identityName(w.role, w.node) !== 'agent@node-b')
        .map((w) => ({
          name: identityName(w.role, w.node),
          role: w.role,
          ...(w.node ? { node: w.node } : {}),
          publicKey: keys.get(identityName(w.role, w.node))!.getPublicKey(),
        })),
    });
    const reader = createTrust(readerRegistry, keys.get('ops'));
    const judge = createEventJudge(reader, validators, () => {});
    const seal = sealMessage(data, raws.at(-1)!.seq + 1);
    let offered = 0;
    const out = judge.sealed(
      raws.map((raw) => ({ raw })),
      seal,
      () => (offered++, true),
    );
    assert.equal(offered, 0);
    assert.deepEqual(
      out.map((e) => e.event),
      [...events.filter((e) => e.actor.service !== 'node-agent'), seal.event],
    );
    assert.equal(reader.rejections, 1);
  });

  it('given a seal signed by an agent and a reader that takes any snapshot, then none is offered: the seal is refused, each message checked', async () => {
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    let offered = 0;
    const out = judge.sealed(
      raws.map((raw) => ({ raw })),
      sealMessage(data, raws.at(-1)!.seq + 1, 'agent@node-b'),
      () => (offered++, true),
    );
    assert.equal(offered, 0);
    assert.deepEqual(
      out.map((e) => e.event),
      events,
    );
    assert.equal(reader.checks(), 5);
  });

  it('given a forgery the coordinator skipped, then the chains differ: no snapshot is offered, each message is checked and the forgery refused', async () => {
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const forged = storedLog(
      [['agent@node-a', ev('StepSucceeded', agentB, outcome('node-b'), 'forged')]],
      raws[2]!.seq + 1,
    ).raws[0]!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const seal = sealMessage(data, raws.at(-1)!.seq + 1);
    let offered = 0;
    const out = judge.sealed(
      withDecoded([...raws.slice(0, 3), forged, raws[3]!]),
      seal,
      () => (offered++, true),
    );
    assert.equal(offered, 0);
    assert.deepEqual(
      out.map((e) => e.event),
      [...events, seal.event],
    );
    assert.equal(reader.checks(), 6, 'the seal and all five messages');
    assert.equal(reader.trust.rejections, 1);
  });

  it('given a seal signed by an agent, then it is refused and each message is checked', async () => {
    const { raws, events } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const out = judge.sealed(withDecoded(raws), sealMessage(data, raws.at(-1)!.seq + 1, 'agent@node-b'));
    assert.deepEqual(
      out.map((e) => e.event),
      events,
    );
    assert.equal(reader.checks(), 5);
  });

  it('given a seal of another log (its digest), then each message is checked', async () => {
    const { raws } = cleanLog();
    const data = (await coordinatorSeal(raws))!;
    const other = { ...data, digest: `sha256:${'0'.repeat(64)}` };
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    assert.equal(judge.sealed(withDecoded(raws), sealMessage(other, raws.at(-1)!.seq + 1)).length, 5);
    assert.equal(reader.checks(), 5);
  });

  it('given a believed seal over a message its signer may not write, then the seal vouches for the signature, not for the authority: it is refused', () => {
    // A StepSucceeded of node-b's restore, really signed by node-a's agent, in a chain a coordinator signed anyway.
    const { raws } = cleanLog();
    const wrong = storedLog(
      [
        [
          'agent@node-a',
          ev('StepSucceeded', { service: 'node-agent', node: 'node-a' }, outcome('node-a'), 'wrong'),
        ],
      ],
      raws[2]!.seq + 1,
    ).raws[0]!;
    const log = [...raws.slice(0, 3), wrong, raws[3]!];
    const c = newChain();
    for (const r of log) extendChain(c, r.seq, r.headers, r.data);
    const reader = counting('ops');
    const judge = createEventJudge(reader.trust, validators, () => {});
    const out = judge.sealed(withDecoded(log), sealMessage(sealDataOf(c), raws.at(-1)!.seq + 1));
    assert.equal(reader.checks(), 1, 'vouched for: no message signature checked');
    assert.equal(out.length, 5, 'the four real events and the seal');
    assert.ok(!out.some((e) => e.event.eventId.endsWith(':wrong')));
    assert.equal(reader.trust.rejections, 1);
  });
});

describe('a seal taken without its log (EventJudge.sealAlone)', () => {
  // The clean log at 10, 13, 16, 19; its seal at 20. The subject holds those five; the stream starts at 1.
  const asStream = { stored: 5, firstSeq: 1 };
  /** A reader's verdict on the seal, and whether `snapshot` was asked. */
  async function alone(
    seal: ReturnType<typeof sealMessage>,
    stream = asStream,
    reader: Trust = createTrust(registry, undefined),
    take = true,
  ) {
    const judge = createEventJudge(reader, validators, () => {});
    let asked = false;
    const got = judge.sealAlone(seal, stream, () => ((asked = true), take), await judge.checkSeal(seal));
    return { got, asked };
  }
  const sealed = async () => (await coordinatorSeal(cleanLog().raws))!;

  it('given a believed seal that names its messages, then it stands for its log', async () => {
    const data = await sealed();
    assert.deepEqual([data.fromSeq, data.upToSeq, data.events], [10, 19, 4]);
    const seal = sealMessage(data, 20);
    assert.deepEqual(await alone(seal), { got: { seq: 20, event: seal.event, snapshot: true }, asked: true });
  });

  it('given a subject that holds more or fewer, a stream that lost its start, or a seal not after its log, then not', async () => {
    const seal = sealMessage(await sealed(), 20);
    for (const stored of [4, 6])
      assert.equal((await alone(seal, { ...asStream, stored })).got, undefined, `${stored}`);
    assert.equal((await alone(seal, { ...asStream, firstSeq: 11 })).got, undefined, 'aged out');
    assert.ok((await alone(seal, { ...asStream, firstSeq: 10 })).got, 'the first message still there');
    assert.equal((await alone(sealMessage(await sealed(), 19))).got, undefined, 'at its own upToSeq');
  });

  it('given a seal without named signers, one not believed, or an insecure reader, then not, and its status is never offered', async () => {
    const { signers: _s, fromSeq: _f, ...older } = await sealed();
    for (const [why, seal, reader] of [
      ['written before signers were named', sealMessage(older, 20), undefined],
      ["signed by an agent's key", sealMessage(await sealed(), 20, 'agent@node-a'), undefined],
      ['an insecure reader', sealMessage(await sealed(), 20), insecureTrust()],
    ] as const) {
      const r = await alone(seal, asStream, reader);
      assert.deepEqual(r, { got: undefined, asked: false }, why);
    }
    const refused = await alone(sealMessage(await sealed(), 20), asStream, undefined, false);
    assert.deepEqual(refused, { got: undefined, asked: true }, 'a snapshot the caller does not take');
  });

  it("given a signer this reader's registry retired before the seal's upToSeq, then not; retired at it or later, then yes", async () => {
    const seal = sealMessage(await sealed(), 20);
    const retiredAt = (eventsUpTo: number) =>
      createTrust(
        parseRegistry({
          cluster: 'test',
          identities: who.map((w) => {
            const name = identityName(w.role, w.node);
            const publicKey = keys.get(name)!.getPublicKey();
            const rotated = name === 'agent@node-b';
            return {
              name,
              role: w.role,
              ...(w.node ? { node: w.node } : {}),
              publicKey: rotated ? createUser().getPublicKey() : publicKey,
              ...(rotated ? { retiredKeys: [{ publicKey, eventsUpTo }] } : {}),
            };
          }),
        }),
        undefined,
      );
    // agent@node-b signed the message at 16: a key retired at 16 still vouches for it, but the check is at upToSeq.
    assert.equal((await alone(seal, asStream, retiredAt(16))).got, undefined);
    assert.ok((await alone(seal, asStream, retiredAt(19))).got);
  });
});
