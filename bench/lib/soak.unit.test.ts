import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BenchArgError } from './bench-args.ts';
import { parseSoakArgs } from './soak-args.ts';
import { runChaos, type Kill } from './soak-chaos.ts';
import { compareEventLogs, type Seen } from './soak-events.ts';
import { spread } from './soak-report.ts';
import { createRng } from './soak-rng.ts';
import type { Managed, ServiceKind } from './soak-services.ts';

describe('the soak command line', () => {
  it('has a default for everything and reads --minutes, --nodes, --seed and ranges', () => {
    const d = parseSoakArgs([]);
    assert.notEqual(d, 'help');
    if (d === 'help') return;
    assert.equal(d.nodes, 3);
    assert.equal(d.chaos, true);
    const o = parseSoakArgs([
      '--minutes',
      '0.5',
      '--nodes',
      '3',
      '--seed',
      '7',
      '--kill-gap-s',
      '1-2.5',
      '--no-chaos',
    ]);
    assert.deepEqual(o !== 'help' && [o.minutes, o.nodes, o.seed, o.killGapS, o.chaos], [
      0.5,
      3,
      7,
      { min: 1, max: 2.5 },
      false,
    ]);
    assert.equal(parseSoakArgs(['--minutes', '1', '--help']), 'help');
  });

  for (const [argv, flag] of [
    [['--minutes', 'ten'], '--minutes'],
    [['--minutes'], '--minutes'],
    [['--nodes', '1'], '--nodes'],
    [['--nodes', '2.5'], '--nodes'],
    [['--seed', '-1'], '--seed'],
    [['--kill-gap-s', '9-3'], '--kill-gap-s'],
    [['--down-s', 'soon'], '--down-s'],
    [['--minutes', '1', '--node', '3'], '--node'],
    [['--out'], '--out'],
  ] as const)
    it(`refuses ${argv.join(' ')} naming ${flag}`, () => {
      assert.throws(
        () => parseSoakArgs(argv),
        (err: unknown) =>
          err instanceof BenchArgError && err.flag === flag && err.message.startsWith(`${flag}: `),
      );
    });
});

describe('seeded choices', () => {
  it('give the same sequence for the same seed and label, and another for another label', () => {
    const draw = (seed: number, label: string) => {
      const r = createRng(seed, label);
      return Array.from({ length: 20 }, () => r.next());
    };
    assert.deepEqual(draw(42, 'chaos'), draw(42, 'chaos'));
    assert.notDeepEqual(draw(42, 'chaos'), draw(42, 'ct-101'));
    assert.notDeepEqual(draw(42, 'chaos'), draw(43, 'chaos'));
    assert.ok(draw(1, 'x').every((v) => v >= 0 && v < 1));
  });
});

/** A service that only records what happens to it. */
function fakeService(name: string, kind: ServiceKind, journal: string[]): Managed {
  let up = true;
  return {
    name,
    kind,
    pid: () => (up ? 1000 : undefined),
    kill9() {
      assert.ok(up, `${name} killed while down`);
      up = false;
      journal.push(`kill ${name}`);
      return Promise.resolve(1000);
    },
    start() {
      up = true;
      journal.push(`start ${name}`);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
  };
}

async function chaosRun(seed: number, killsWanted: number): Promise<{ journal: string[]; kills: Kill[] }> {
  const journal: string[] = [];
  const victims = [
    fakeService('agent-node-a', 'agent', journal),
    fakeService('agent-node-b', 'agent', journal),
    fakeService('streamer-node-a', 'streamer', journal),
    fakeService('coordinator-1', 'coordinator', journal),
    fakeService('nats-n1', 'nats', journal),
    fakeService('nats-n2', 'nats', journal),
  ];
  const ac = new AbortController();
  let n = 0;
  const kills = await runChaos({
    rng: createRng(seed, 'chaos'),
    victims,
    gapS: { min: 0, max: 0.002 },
    downS: { min: 0, max: 0.002 },
    signal: ac.signal,
    now: () => 0,
    onKill: () => {
      // Abort while the last victim is down: it must still be started again.
      if (++n === killsWanted) ac.abort();
    },
    onBack: () => {},
  });
  return { journal, kills };
}

describe('the chaos loop', () => {
  it('skips a kill its beforeKill refuses (a nats-server while a replica is behind): that round kills nobody', async () => {
    const journal: string[] = [];
    const victims = [fakeService('agent-node-a', 'agent', journal), fakeService('nats-n1', 'nats', journal)];
    const ac = new AbortController();
    let rounds = 0;
    const kills = await runChaos({
      rng: createRng(7, 'chaos'),
      victims,
      gapS: { min: 0, max: 0.002 },
      downS: { min: 0, max: 0.002 },
      signal: ac.signal,
      now: () => 0,
      beforeKill: (v) => {
        if (++rounds === 20) ac.abort();
        return Promise.resolve(v.kind !== 'nats');
      },
      onKill: () => {},
      onBack: () => {},
    });
    assert.ok(kills.length > 0 && kills.length < 20, `${kills.length} kills in 20 rounds`);
    assert.ok(kills.every((k) => k.kind === 'agent'));
    assert.ok(!journal.some((l) => l.includes('nats-n1')), journal.join('\n'));
  });

  it('kills one service at a time, starts each again (also the one down when it stops), in a seeded order', async () => {
    const a = await chaosRun(5, 12);
    assert.equal(a.kills.length, 12);
    assert.equal(a.journal.length, 24);
    a.journal.forEach((line, i) => {
      const victim = a.kills[Math.floor(i / 2)]!.name;
      assert.equal(line, `${i % 2 === 0 ? 'kill' : 'start'} ${victim}`);
    });
    assert.ok(a.kills.every((k) => k.backAfterMs !== undefined));
    const b = await chaosRun(5, 12);
    assert.deepEqual(
      b.kills.map((k) => [k.name, k.downMs]),
      a.kills.map((k) => [k.name, k.downMs]),
    );
    const c = await chaosRun(6, 12);
    assert.notDeepEqual(
      c.kills.map((k) => k.name),
      a.kills.map((k) => k.name),
    );
  });
});

const ev = (seq: number, migrationId: string, eventId: string): Seen => ({
  seq,
  migrationId,
  eventId,
  type: 'StepIntended',
});
const bySeq = (list: Seen[]) => new Map(list.map((s) => [s.seq, s]));
const byMigration = (list: Seen[]) => {
  const m = new Map<string, Seen[]>();
  for (const s of list) m.set(s.migrationId, [...(m.get(s.migrationId) ?? []), s]);
  return m;
};

describe('the event-loss audit', () => {
  const seen = [ev(1, 'm1', 'a'), ev(2, 'm2', 'b'), ev(3, 'm1', 'c'), ev(4, 'm2', 'd')];

  it('finds nothing lost when the stream at the end holds what was seen (and counts what was never seen)', () => {
    const end = [...seen, ev(5, 'm1', 'e')];
    const r = compareEventLogs(bySeq(seen), bySeq(end), byMigration(end));
    assert.deepEqual(r.lost, []);
    assert.deepEqual(r.reordered, []);
    assert.equal(r.unobserved, 1);
    assert.equal(r.observed, 4);
  });

  it('counts an event gone from the stream, or replaced at its sequence, once each', () => {
    const end = [ev(1, 'm1', 'a'), ev(2, 'm2', 'b'), ev(3, 'm1', 'x')];
    const r = compareEventLogs(bySeq(seen), bySeq(end), byMigration(end));
    assert.deepEqual(
      r.lost.map((l) => [l.eventId, l.missingFrom, l.atEndInstead]),
      [
        ['c', ['stream', 'subject'], 'x'],
        ['d', ['stream', 'subject'], undefined],
      ],
    );
  });

  it('counts an event still in the stream but missing from its migration when read by subject', () => {
    const perMigration = byMigration(seen.filter((s) => s.eventId !== 'b'));
    const r = compareEventLogs(bySeq(seen), bySeq(seen), perMigration);
    assert.deepEqual(
      r.lost.map((l) => [l.eventId, l.missingFrom]),
      [['b', ['subject']]],
    );
  });

  it('reports an event the reader refused apart: in the stream, left out by subject, not lost', () => {
    const perMigration = byMigration(seen.filter((s) => s.eventId !== 'b'));
    const b = seen.find((s) => s.eventId === 'b')!;
    const r = compareEventLogs(bySeq(seen), bySeq(seen), perMigration, new Set([b.seq]));
    assert.deepEqual(r.lost, []);
    assert.deepEqual(
      r.refused.map((s) => s.eventId),
      ['b'],
    );
  });

  it('reports a migration whose events come back in another order', () => {
    const perMigration = byMigration(seen);
    perMigration.set('m1', [ev(3, 'm1', 'c'), ev(1, 'm1', 'a')]);
    const r = compareEventLogs(bySeq(seen), bySeq(seen), perMigration);
    assert.deepEqual(r.lost, []);
    assert.deepEqual(r.reordered, [{ migrationId: 'm1', seen: ['a', 'c'], atEnd: ['c', 'a'] }]);
  });
});

describe('duration summaries', () => {
  it('give the median, the 90th percentile and the maximum', () => {
    assert.equal(spread([]), undefined);
    assert.deepEqual(spread([5, 1, 4, 2, 3, 6, 7, 8, 9, 10]), { n: 10, p50: 5, p90: 9, max: 10 });
  });
});
