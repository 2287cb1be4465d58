import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import {
  admissionLedgerKey,
  buckets,
  decodeJson,
  openBucket,
  pidAlive,
  streams,
  type StoredEvent,
} from '@haul/bus';
import { exitCodes, type ExitName } from '@haul/cli';
import type { CheckAnswered, NodeHeartbeat } from '@haul/schemas';
import {
  brokenInvariants,
  runHaul,
  startRunningWorld,
  takeBaseline,
  type Baseline,
  type CliRun,
  type CtPlace,
  type World,
} from '@haul/test';

/**
 * Fleet operations in one world of three nodes: `haul migrate --check` changes nothing on either
 * host and answers 0 or 4; `haul evacuate` moves four CTs off node-a, two at a time, with every invariant holding;
 * each migration records who asked (the CLI's signing identity) and why, and `haul status` shows both; a check
 * before any migration estimates the downtime from the CT's resident memory (the speeds assumed, and said so), one
 * after the evacuation predicts it from what the evacuation measured.
 */
const nodes = ['node-a', 'node-b', 'node-c'];
const extraCts = ['102', '103', '104'];

describe('fleet operations: migrate --check, evacuate, who and why', () => {
  let w: World;
  /** The CLI as the scheduler: it logs in (in a secure world) and signs its requests with the scheduler's key. */
  let haul: (args: string[]) => Promise<CliRun>;
  /** `haul migrate --check` of a CT from one node to another, with any further words. */
  const check = (ctid: string, from: string, to: string, ...more: string[]) =>
    haul(['migrate', '--ct', ctid, '--from', from, '--to', to, '--check', ...more]);
  const place = (ctid: string, shared: string[] = []): CtPlace => ({
    cluster: w.cluster,
    nodes,
    ctid,
    shared,
  });

  before(async () => {
    w = await startRunningWorld({ nodes, memoryMb: 16, dirtyRate: 100, diskWrites: 5 });
    haul = (args) => runHaul(args, { env: w.envAs('scheduler') });
    const create = ['create-ct', '--memory-mb', '16', '--dirty-rate', '100', '--disk-writes', '5'];
    for (const ct of extraCts) {
      await w.cluster.ok('node-a', 'haul-emu', [...create, '--ctid', ct, '--seed', ct]);
      for (const n of nodes.slice(1))
        await w.cluster.ok(n, 'haul-emu', [...create, '--ctid', ct, '--config-only']);
      await w.cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', ct]);
    }
  });
  /** Run a test's body; when it fails, keep every service's log (a folder, named in the error). */
  const logsOnFailure = (body: () => Promise<void>) => async () => {
    try {
      await body();
    } catch (err) {
      const dir = mkdtempSync(join(tmpdir(), 'haul-fleet-logs-'));
      for (const s of w.services.values()) writeFileSync(join(dir, `${s.name}.log`), s.lines.join('\n'));
      throw new Error(`${(err as Error).message}\n(service logs kept in ${dir})`, { cause: err });
    }
  };
  after(() => w?.stop());

  it(
    'migrate --check of a CT that would work: exit 0, its disks and sizes, a downtime estimate, nothing changed or frozen',
    logsOnFailure(async () => {
      const before = await hostState(w, '101');
      const r = await check('101', 'node-a', 'node-b', '--json');
      exits(r, 'completed');
      const c = JSON.parse(r.out) as CheckAnswered;
      assert.equal(c.wouldWork, true);
      assert.deepEqual(
        c.disks.map((d) => [d.location, d.action]),
        [
          ['private', 'copied'],
          ['shared', 'shared'],
        ],
      );
      assert.ok(c.disks[0]!.bytes! > 0 && c.copy.localDiskBytes === c.disks[0]!.bytes);
      assert.ok(c.copy.memoryBytes! > 16 * 2 ** 20, `resident memory ${c.copy.memoryBytes}`);
      // No migration has measured CT 101's dirty rate, nor anything of these nodes: an estimate from its resident
      // memory as inspected now, the whole of it counted as the final dump, the speeds assumed.
      const d = c.downtime;
      assert.ok(d.predictedMs! > 0, JSON.stringify(d));
      assert.equal(d.basis, 'estimate');
      assert.deepEqual(d.inputs?.memoryBytes, { value: c.copy.memoryBytes, from: 'inspected' });
      assert.deepEqual(d.inputs?.dumpedBytes, { value: c.copy.memoryBytes, from: 'assumed' });
      assert.equal(d.inputs?.linkBytesPerSec.from, 'assumed');
      assert.match(
        d.note,
        /^the final dump is counted as the CT's whole resident memory.*CT 101.*; assumed: .*link \d+ MB\/s/,
      );
      // Without pre-dumps the whole memory is what the final dump writes, as inspected.
      const off = JSON.parse(
        (await check('101', 'node-a', 'node-b', '--pre-dump', 'off', '--json')).out,
      ) as CheckAnswered;
      assert.equal(off.downtime.basis, 'estimate');
      assert.deepEqual(off.downtime.inputs?.dumpedBytes, { value: off.copy.memoryBytes, from: 'inspected' });
      assert.match(
        off.downtime.note,
        /^no pre-dump: the whole resident memory is dumped, streamed and restored/,
      );
      assert.deepEqual(await hostState(w, '101'), before);
    }),
  );

  it(
    'migrate --check of a CT that would not work (a wrong --shared-disk): exit 4 naming it, nothing changed',
    logsOnFailure(async () => {
      const before = await hostState(w, '101');
      const wrong = join(w.cluster.shared, 'not-a-disk-of-101');
      const r = await check('101', 'node-a', 'node-b', '--shared-disk', wrong);
      exits(r, 'rejected');
      assert.match(r.err, /HAUL_PREFLIGHT_SHARED_DISK \(field sharedDisks\.0\).*not-a-disk-of-101/);
      assert.match(r.out, /would NOT work/);
      assert.deepEqual(await hostState(w, '101'), before);
    }),
  );

  it(
    'evacuate node-a --to node-b,node-c --parallel 2: all four CTs on the targets, invariants green, who and why recorded',
    logsOnFailure(async () => {
      const cts = ['101', ...extraCts];
      await heartbeatLists(w, 'node-a', cts);
      const bases = new Map<string, Baseline>();
      for (const ct of cts)
        bases.set(ct, await takeBaseline(place(ct, ct === '101' ? w.shared : []), 'node-a'));
      const r = await haul([
        'evacuate',
        'node-a',
        '--to',
        'node-b,node-c',
        '--parallel',
        '2',
        '--reason',
        'kernel upgrade',
        '--json',
      ]);
      exits(r, 'completed');
      const lines = r.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const summary = lines.at(-1) as {
        type: string;
        results: { ct: string; target: string; migrationId: string; outcome: string }[];
      };
      assert.equal(summary.type, 'EvacuationSummary');
      assert.deepEqual(
        summary.results.map((x) => [x.ct, x.target, x.outcome]),
        [
          ['101', 'node-b', 'completed'],
          ['102', 'node-c', 'completed'],
          ['103', 'node-b', 'completed'],
          ['104', 'node-c', 'completed'],
        ],
      );
      // Each CT's migration: accepted, then phases, then its outcome, one line each, in that order.
      for (const x of summary.results) {
        const phases = lines
          .filter((l) => l['type'] === 'EvacuationProgress' && l['ct'] === x.ct)
          .map((l) => l['phase']);
        assert.equal(phases[0], 'accepted', `CT ${x.ct}: ${phases.join(', ')}`);
        assert.equal(phases.at(-1), 'completed', `CT ${x.ct}: ${phases.join(', ')}`);
      }
      const logs = new Map<string, StoredEvent[]>();
      for (const x of summary.results) {
        const stored = (await w.eventLog.read(x.migrationId)).events;
        logs.set(x.ct, stored);
        const events = stored.map((e) => e.event);
        const shared = x.ct === '101' ? w.shared : [];
        assert.deepEqual(
          await brokenInvariants(place(x.ct, shared), x.migrationId, events, bases.get(x.ct)!),
          [],
          `CT ${x.ct}`,
        );
        const requested = events[0]!;
        assert.ok(requested.type === 'MigrationRequested');
        assert.equal(requested.data.requestedBy, 'scheduler');
        assert.equal(requested.data.request.reason, 'kernel upgrade');
      }
      // Two at once, not one after the other: the first two requests go out together and neither is refused (the
      // coordinator's maxPerNode is 2: node-a takes part in 0, then 1), so the second MigrationRequested is appended
      // while the first migration is in its preflight. Timing enters only as this: answering one request must take
      // the coordinator less than a whole migration (preflight, dumps, transfer and restore, each a round trip to an
      // agent running a tool), on a busy machine too. Counted in stream sequences, which JetStream orders, not in the
      // events' clock times (a millisecond apart at best).
      assert.equal(mostAtOnce([...logs.values()]), 2, 'two migrations at once, never three');
      const st = await haul(['status', summary.results[0]!.migrationId]);
      exits(st, 'completed');
      assert.match(st.out, /^requested by scheduler: kernel upgrade$/m);
    }),
  );

  it(
    'a check after the evacuation predicts the downtime from what CT 101’s migration measured: its basis is history',
    logsOnFailure(async () => {
      const r = await check('101', 'node-b', 'node-a', '--json');
      const c = JSON.parse(r.out) as CheckAnswered;
      const d = c.downtime;
      assert.ok(d.predictedMs! > 0, JSON.stringify(d));
      // Its evacuation node-a → node-b measured every speed, and the link is the same pair the other way.
      assert.equal(d.basis, 'history', JSON.stringify(d));
      const dirty = d.inputs?.dirtyPagesPerSec;
      assert.equal(dirty?.from, 'measured');
      assert.deepEqual([dirty?.ctid, dirty?.source, dirty?.target], ['101', 'node-a', 'node-b']);
      assert.equal(d.inputs?.linkBytesPerSec.migrationId, dirty?.migrationId);
      assert.equal(d.inputs?.frozenDiskBytes.from, 'measured', 'the frozen pass of its root disk');
    }),
  );
});

const exits = (r: CliRun, name: ExitName) =>
  assert.equal(r.code, exitCodes[name].code, `expected ${name}, got ${r.code}\n${r.err}\n${r.out}`);

/**
 * Everything a check could have changed, on both hosts and on the bus: every path below each node's root (the CT's
 * log files and block journal aside: the running CT writes them), every disk descriptor's bytes, the criu dump
 * journal (a freeze is a dump), the CT's pid and whether it is frozen, the admission ledger and the event log.
 */
/**
 * A lock marker of the emulated cluster (host-emulators/src/lib/lock.ts: `<pid> <name>`) held at this moment by a live
 * process: the running CT's block writes take their device's I/O lock (`io:<device>`) for a moment, and tools the
 * agents and the CTs run take others (seen: a marker present before a check and released by the time it ended). One
 * gone by the time it is read was released. A lock a check left behind outlives its holder (the check's tools exit),
 * so its marker names a dead process and is not skipped.
 */
function heldNow(f: string): boolean {
  // Every file in the cluster's lock folder is a lock marker, whatever its name (host-emulators/src/lib/lock.ts).
  if (!/\/cluster\/locks\/[^/]+$/.test(f)) return false;
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(f, 'utf8'), 10);
  } catch {
    return true;
  }
  // A marker made and not written yet (lock.ts opens it, then writes the pid) has its holder running.
  return Number.isNaN(pid) || pidAlive(pid);
}

async function hostState(w: World, ctid: string): Promise<unknown> {
  // What a running CT changes by itself: its log, the emulated kernel's page cache of its
  // mounted disk (var/lib/haul-emu/pagecache), lock files and sockets. Dirty tracking
  // (var/lib/haul-emu/tracking) stays in: a check must not start it.
  const busy = /\/var\/log\/ct-|\/var\/lib\/haul-emu\/pagecache\/|\.hds$|\/ct-[0-9]+\.sock$/;
  const files = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, encoding: 'utf8' })
      .map((f) => join(dir, f))
      .filter((f) => !busy.test(f) && !heldNow(f))
      .map((f) => relative(w.cluster.dir, f))
      .sort();
  const descriptors = files(w.cluster.dir)
    .filter((f) => f.endsWith('DiskDescriptor.xml'))
    .map((f) => [f, readFileSync(join(w.cluster.dir, f), 'utf8')]);
  const dumps = join(w.cluster.nodeRoot('node-a'), 'var', 'log', `ct-${ctid}.dumps`);
  const mem = JSON.parse(await w.cluster.ok('node-a', 'haul-emu', ['checksum-mem', ctid])) as {
    frozen: boolean;
  };
  const ledger = await (
    await openBucket(await w.connectAs('coordinator'), buckets.admission)
  ).get(admissionLedgerKey);
  const info = await (await jetstreamManager(w.nc)).streams.info(streams.events);
  return {
    files: files(w.cluster.dir),
    descriptors,
    dumps: existsSync(dumps) ? readFileSync(dumps, 'utf8') : '',
    frozen: mem.frozen,
    pid: readFileSync(join(w.cluster.nodeRoot('node-a'), 'var', 'run', 've', `${ctid}.init.pid`), 'utf8'),
    admitted: ledger?.operation === 'PUT' ? (decodeJson(ledger.value) as { entries: unknown[] }).entries : [],
    events: info.state.messages,
  };
}

/** Wait until the node's heartbeat lists these CTs as running (the agent reports every 2 s). */
async function heartbeatLists(w: World, node: string, cts: string[]): Promise<void> {
  const kv = await openBucket(w.nc, buckets.nodes);
  const watch = await kv.watch({ key: node });
  try {
    for await (const e of watch) {
      const hb = e.operation === 'PUT' ? (decodeJson(e.value) as NodeHeartbeat) : undefined;
      if (cts.every((c) => hb?.runningCts?.includes(c))) return;
    }
  } finally {
    watch.stop();
  }
}

/** The most migrations under way at once: logs that overlap in the stream, from MigrationRequested to its end. */
function mostAtOnce(logs: StoredEvent[][]): number {
  const edges = logs.flatMap((l) => [
    { seq: l[0]!.seq, d: 1 },
    { seq: l.at(-1)!.seq, d: -1 },
  ]);
  edges.sort((a, b) => a.seq - b.seq);
  let now = 0;
  let most = 0;
  for (const e of edges) most = Math.max(most, (now += e.d));
  return most;
}
