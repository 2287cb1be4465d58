import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeJson, subjects } from '@haul/bus';
import { commands, exitCodes, type ExitName } from '@haul/cli';
import type { MigrationStatus, NodeHeartbeat } from '@haul/schemas';
import {
  awaitEvent,
  freePort,
  haulBin,
  runHaul,
  awaitSeal,
  repoRoot,
  startNatsServer,
  publishAs,
  startRunningWorld,
  tempIdentities,
  type CliRun,
  type CliRunOptions,
  type FaultRule,
  type NatsServer,
  type World,
} from '@haul/test';

type Run = CliRun;

/**
 * The CLI runs as ops: it shows events only as the cluster's registry (HAUL_IDENTITIES_FILE) says to believe them.
 * Outside a world, keys of their own; in a world, the world's.
 */
let opsEnv: Record<string, string> = tempIdentities().env('ops');
/** What a scheduler may do and ops may not: these calls run as the scheduler. */
const changes = new Set(['migrate', 'cancel', 'retry', 'resolve']);
let schedulerEnv: Record<string, string> = tempIdentities().env('scheduler');
const bin = haulBin;

/** Run the installed CLI against the server at `url`, as the scheduler or ops (see `changes`). */
function haul(url: string, args: string[], o: CliRunOptions = {}): Promise<Run> {
  const as = changes.has(args[0] ?? '') ? schedulerEnv : opsEnv;
  return runHaul(args, { ...o, env: { ...as, HAUL_NATS_URL: url, ...(o.env ?? {}) } });
}

/** Each line of a --json list as one object. */
const jsonLines = <T>(r: Run): T[] =>
  r.out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as T);

const exits = (r: Run, name: ExitName) =>
  assert.equal(r.code, exitCodes[name].code, `expected ${name}, got ${r.code}\n${r.err}\n${r.out}`);

/** The origin-snapshot merge of a shared disk fails on `node`, every time (a broken disk). */
const mergeFails = (node: string, sharedDir: string): FaultRule => ({
  tool: 'ploop',
  sub: 'snapshot-delete',
  node,
  match: `${basename(sharedDir)}/`,
  action: 'fail',
  exitCode: 1,
  stderr: 'Error in ploop_merge_snapshot: injected',
});

describe('the ops CLI: help, usage errors, no NATS, no coordinator', () => {
  let bare: NatsServer;
  before(async () => {
    bare = await startNatsServer();
  });
  after(() => bare?.stop());

  it('haul --help, haul help CMD and every CMD --help exit 0; each command lists its flags', async () => {
    const top = await haul(bare.url, ['--help']);
    exits(top, 'completed');
    for (const c of commands) assert.match(top.out, new RegExp(`^  ${c.name} `, 'm'));
    exits(await haul(bare.url, ['help', 'migrate']), 'completed');
    for (const c of commands) {
      const r = await haul(bare.url, [c.name, '--help']);
      exits(r, 'completed');
      assert.match(r.out, new RegExp(`^haul ${c.name}: `));
      for (const flag of Object.keys(c.flags)) assert.match(r.out, new RegExp(`--${flag}\\b`), `${c.name}`);
      assert.match(r.out, /^Exit codes:$/m);
    }
  });

  it('haul --version prints the version of the package', async () => {
    const r = await haul(bare.url, ['--version']);
    exits(r, 'completed');
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.out.trim(), pkg.version);
  });

  it('an unknown flag or command is a usage error naming the closest one; nothing is sent', async () => {
    const flag = await haul(bare.url, ['migrate', '--ctid', '101', '--from', 'a', '--to', 'b']);
    exits(flag, 'usage');
    assert.match(flag.err, /unknown flag --ctid \(did you mean --ct\?\)/);
    assert.match(flag.err, /Run 'haul migrate --help' for usage/);
    const cmd = await haul(bare.url, ['stauts', 'm-1']);
    exits(cmd, 'usage');
    assert.match(cmd.err, /unknown command "stauts" \(did you mean status\?\)/);
    const missing = await haul(bare.url, ['migrate', '--ct', '101', '--from', 'node-b']);
    exits(missing, 'usage');
    assert.match(missing.err, /missing --to NODE/);
    exits(await haul(bare.url, []), 'usage');
    const expect = await haul(bare.url, ['services', '--expect', '0']);
    exits(expect, 'usage');
    assert.match(expect.err, /--expect takes a whole number ≥ 1/);
  });

  it('NATS unreachable, NATS without a coordinator, and no stream yet each have their own exit code', async () => {
    const down = await haul(`nats://127.0.0.1:${await freePort()}`, ['ls']);
    exits(down, 'natsUnreachable');
    assert.match(down.err, /cannot reach NATS/);
    const noCoordinator = await haul(bare.url, ['migrate', '--ct', '101', '--from', 'a', '--to', 'b']);
    exits(noCoordinator, 'noCoordinator');
    assert.match(noCoordinator.err, /no coordinator is answering on haul\.api\.migrate/);
    exits(await haul(bare.url, ['ls']), 'noCoordinator');
    // No coordinator ever ran on this NATS: no log, no node bucket, the same code and words for both.
    for (const args of [['events'], ['events', '--migration', 'm-1'], ['nodes'], ['nodes', '--json']]) {
      const noStream = await haul(bare.url, args);
      exits(noStream, 'noCoordinator');
      assert.match(
        noStream.err,
        /no coordinator has run on this NATS yet \(the first one to start makes haul's/,
      );
      assert.doesNotMatch(noStream.err, /\n\s+at /, 'no stack trace');
      assert.equal(noStream.out, '', args.join(' '));
    }
    const none = await haul(bare.url, ['services']);
    exits(none, 'completed');
    assert.equal(none.out.trim(), 'SERVICE  NODE  PID  UP  DETAILS');
  });
});

describe('the ops CLI against a running installation', () => {
  let w: World;
  let id = '';
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16 });
    opsEnv = w.envAs('ops');
    schedulerEnv = w.envAs('scheduler');
  });
  after(() => w?.stop());

  it('haul migrate shows live progress and the stats, exit 0 on success', async () => {
    const r = await haul(w.server.url, [
      'migrate',
      '--ct',
      w.ctid,
      '--from',
      'node-a',
      '--to',
      'node-b',
      '--shared-disk',
      w.shared[0]!,
      '--request-id',
      'cli-1',
    ]);
    exits(r, 'completed');
    id = /^migration (m-[0-9a-f]+)/m.exec(r.out)![1]!;
    assert.match(r.out, /\[pre-dump 0\]/);
    assert.match(r.out, /Migration succeeded/);
    assert.match(r.out, / restore time is ~/);
  });

  it('haul status, ls, events and nodes read what happened; tables have headers and filters', async () => {
    const st = await haul(w.server.url, ['status', id, '--json']);
    assert.equal((JSON.parse(st.out) as { phase: string }).phase, 'completed');
    const ls = (await haul(w.server.url, ['ls'])).out.split('\n');
    assert.match(
      ls[0]!,
      /^MIGRATION\s+CT\s+SOURCE\s+TARGET\s+MODE\s+PHASE\s+BY\s+DURATION\s+DOWNTIME\s+UPDATED\s+REASON$/,
    );
    assert.match(ls[1]!, new RegExp(`^${id}\\s+101\\s+node-a\\s+node-b\\s+live\\s+completed\\s+\\S+\\s+\\d`));
    assert.doesNotMatch((await haul(w.server.url, ['ls', '--phase', 'rolled-back'])).out, new RegExp(id));
    assert.doesNotMatch((await haul(w.server.url, ['ls', '--ct', '102'])).out, new RegExp(id));
    assert.match((await haul(w.server.url, ['ls', '--node', 'node-b'])).out, new RegExp(id));
    // The same status rebuilt here from the signed log, no coordinator asked: its lastSeq is the seal's once the
    // coordinator sealed the log (else the terminal event's), the rest the same.
    type Status = { migrationId: string; lastSeq: number };
    const withoutSeq = ({ lastSeq: _, ...s }: Status) => s;
    const fromLog = (await haul(w.server.url, ['ls', '--from-log', '--json'])).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Status);
    assert.deepEqual(fromLog.filter((s) => s.migrationId === id).map(withoutSeq), [
      withoutSeq(JSON.parse(st.out) as Status),
    ]);
    const narrow = await haul(w.server.url, ['ls'], { env: { COLUMNS: '60' } });
    assert.ok(
      narrow.out
        .trimEnd()
        .split('\n')
        .every((l) => l.length <= 60),
      narrow.out,
    );
    const human = await haul(w.server.url, ['events', '--migration', id, '--from-seq', '1']);
    assert.match(human.out, /StepSucceeded\s+restore/);
    const nodes = await haul(w.server.url, ['nodes']);
    assert.match(nodes.out, /^NODE\s+STATE\s+HEARTBEAT/);
    assert.match(nodes.out, /node-a\s+alive/);
    assert.match(nodes.out, /node-b\s+alive/);
    assert.doesNotMatch((await haul(w.server.url, ['nodes', '--node', 'node-b'])).out, /node-a/);
    const listed = jsonLines<MigrationStatus>(await haul(w.server.url, ['ls', '--json']));
    const mine = listed.find((s) => s.migrationId === id);
    assert.deepEqual(
      mine && [mine.ctid, mine.source, mine.target, mine.mode, mine.phase],
      [w.ctid, 'node-a', 'node-b', 'live', 'completed'],
      JSON.stringify(listed),
    );
    assert.ok(mine?.stats?.downtimeMs !== undefined, 'the stats of an ended migration');
    assert.equal((await haul(w.server.url, ['ls', '--json', '--phase', 'rolled-back'])).out, '');
    const beats = jsonLines<NodeHeartbeat & { ageMs: number }>(await haul(w.server.url, ['nodes', '--json']));
    assert.deepEqual(beats.map((b) => b.node).sort(), ['node-a', 'node-b']);
    for (const b of beats) {
      assert.ok(b.ageMs >= 0 && b.ageMs < 60_000, `${b.node}: heartbeat ${b.ageMs} ms old`);
      assert.equal(typeof b.criuVersion, 'string');
      assert.equal(typeof b.freeBytes, 'number');
    }
    const one = jsonLines<NodeHeartbeat>(await haul(w.server.url, ['nodes', '--node', 'node-b', '--json']));
    assert.deepEqual(
      one.map((b) => b.node),
      ['node-b'],
    );
    // The world's five services: every one of them is waited for (1 s can pass on a loaded machine).
    const svc = (await haul(w.server.url, ['services', '--json', '--expect', '5'])).out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { service: string; node: string });
    assert.deepEqual(svc.map((x) => `${x.service}@${x.node}`).sort(), [
      'coordinator@coordinator',
      'image-streamer@node-a',
      'image-streamer@node-b',
      'node-agent@node-a',
      'node-agent@node-b',
    ]);
    const onB = jsonLines<{ service: string; node: string }>(
      await haul(w.server.url, ['services', '--node', 'node-b', '--json', '--expect', '5']),
    );
    assert.deepEqual(onB.map((x) => `${x.service}@${x.node}`).sort(), [
      'image-streamer@node-b',
      'node-agent@node-b',
    ]);
    const table = (await haul(w.server.url, ['services', '--node', 'node-a', '--expect', '5'])).out
      .trim()
      .split('\n');
    assert.match(table[0]!, /^SERVICE\s+NODE\s+PID\s+UP\s+DETAILS$/);
    assert.deepEqual(
      table
        .slice(1)
        .map((l) => l.split(/\s+/).slice(0, 2).join('@'))
        .sort(),
      ['image-streamer@node-a', 'node-agent@node-a'],
    );
  });

  it('haul events without -f exits at the end of the log: one migration, or all of it', async () => {
    await awaitSeal(w.eventLog, id); // the log's last message: nothing comes between the reads below
    const ev = await haul(w.server.url, ['events', '--migration', id, '--json']);
    exits(ev, 'completed');
    const lines = ev.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string });
    assert.equal(lines[0]!.type, 'MigrationRequested');
    assert.deepEqual(
      lines.slice(-2).map((l) => l.type),
      ['MigrationCompleted', 'MigrationSealed'],
    );
    assert.ok(lines.every((l, i) => i === 0 || l.seq > lines[i - 1]!.seq));
    const all = await haul(w.server.url, ['events', '--json']);
    exits(all, 'completed');
    assert.equal(all.out.trim().split('\n').length, lines.length);
    const none = await haul(w.server.url, ['events', '--since', '2100-01-01T00:00:00Z']);
    exits(none, 'completed');
    assert.equal(none.out, '');
    // With -f and --migration: until the terminal event, which this one already has.
    exits(await haul(w.server.url, ['events', '-f', '--migration', id]), 'completed');
  });

  it('a reader that closes the pipe early ends haul quietly with 0, no stack trace', async () => {
    // Closed before haul writes anything: its first write meets a pipe nobody reads.
    const closed = await haul(w.server.url, ['events', '--json'], { with: (c) => c.stdout!.destroy() });
    assert.equal(closed.code, 0, closed.err);
    assert.equal(closed.err, '');
    // As a shell runs it, the pipeline's status counting haul's (pipefail).
    const head = await new Promise<Run>((resolve) => {
      const sh = spawn(
        'bash',
        ['-c', `set -o pipefail; "${process.execPath}" "${bin}" events --json | head -1`],
        {
          env: { ...process.env, HAUL_NATS_URL: w.server.url, ...opsEnv },
        },
      );
      let out = '';
      let err = '';
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
      sh.stderr.on('data', (d: Buffer) => (err += d.toString()));
      sh.once('close', (code, signal) => resolve({ code, signal, out, err }));
    });
    assert.equal(head.code, 0, head.err);
    assert.equal(head.err, '');
    assert.equal((JSON.parse(head.out) as { type: string }).type, 'MigrationRequested');
  });

  it('refusals exit 4: a finished migration cannot be cancelled, an unknown node, a CT that does not exist', async () => {
    const c = await haul(w.server.url, ['cancel', id]);
    exits(c, 'rejected');
    assert.match(c.err, /HAUL_MIGRATION_FINISHED/);
    const node = await haul(w.server.url, ['migrate', '--ct', w.ctid, '--from', 'node-b', '--to', 'node-x']);
    exits(node, 'rejected');
    assert.match(node.err, /HAUL_NODE_UNKNOWN \(field target\)/);
    const noCt = await haul(w.server.url, ['migrate', '--ct', '999', '--from', 'node-b', '--to', 'node-a']);
    exits(noCt, 'rejected');
    assert.match(noCt.out, /Migration refused by preflight: .*\(HAUL_PREFLIGHT_NO_CONFIG\)/);
    // ops may read, not migrate: NATS refuses the request, and haul says which identity it needs.
    const asOps = await runHaul(['migrate', '--ct', w.ctid, '--from', 'node-b', '--to', 'node-a'], {
      env: { ...opsEnv, HAUL_NATS_URL: w.server.url },
    });
    exits(asOps, 'rejected');
    assert.match(
      asOps.err,
      /NATS does not let this identity publish to haul\.api\.migrate: migrate, cancel, retry and resolve need the scheduler identity/,
    );
  });

  it('a migration that rolls back exits 3', async () => {
    w.setFaults([{ tool: 'criu', sub: 'dump', action: 'fail', exitCode: 1, stderr: 'injected' }]);
    try {
      const r = await haul(w.server.url, [
        'migrate',
        '--ct',
        w.ctid,
        '--from',
        'node-b',
        '--to',
        'node-a',
        '--shared-disk',
        w.shared[0]!,
        '--pre-dump',
        'off',
      ]);
      exits(r, 'rolledBack');
      assert.match(r.out, /Migration rolled back: finalDump:- failed/);
    } finally {
      w.setFaults([]);
    }
  });

  it('waiting gives up with 124 at --timeout, and Ctrl-C stops a follow with 130', async () => {
    const t = await haul(w.server.url, [
      'events',
      '-f',
      '--migration',
      'm-000000000000000000000000',
      '--timeout',
      '1s',
    ]);
    exits(t, 'timeout');
    assert.match(t.err, /stopped following after 1s/);
    let signalled = false;
    const i = await haul(w.server.url, ['events', '-f'], {
      with: (c) =>
        c.stdout!.on('data', () => {
          if (!signalled) signalled = c.kill('SIGINT');
        }),
    });
    exits(i, 'interrupted');
    assert.equal(i.err, '');
  });

  it('a migration that gets stuck exits 5 and says what to do', async () => {
    w.setFaults([mergeFails('node-a', w.shared[0]!)]);
    const r = await haul(w.server.url, [
      'migrate',
      '--ct',
      w.ctid,
      '--from',
      'node-b',
      '--to',
      'node-a',
      '--shared-disk',
      w.shared[0]!,
      '--pre-dump',
      'off',
    ]);
    exits(r, 'stuck');
    assert.match(r.out, /Migration stuck on mergeOrigin:1 \(cleanup, \d+ attempts/);
    assert.match(r.out, /then: haul retry m-[0-9a-f]+ \| haul resolve m-[0-9a-f]+ --action mergeOrigin:1/);
  });

  it('a malformed command gets a CommandRejected event naming the field, and the agent stays up', async () => {
    const cmd = {
      commandId: 'm-bad0001:preDump:0:1',
      migrationId: 'm-bad0001',
      node: 'node-b',
      executor: 'agent',
      attempt: 1,
      step: 'preDump',
      timeoutMs: 1000,
      args: { ctid: '101', iteration: 0, workDir: '/tmp' },
    };
    // Signed by the coordinator: an unsigned command is parked without a word in any log (docs/security.md).
    const coordinator = w.identities.trust('coordinator');
    const bus = await w.connectAs('coordinator');
    await publishAs(bus, coordinator, subjects.commands('node-b', 'agent'), encodeJson(cmd), 'bad-1');
    const e = await awaitEvent(w.eventLog, 'm-bad0001', (x) => x.type === 'CommandRejected');
    assert.equal(e.type === 'CommandRejected' && e.data.error.field, 'args.imageDir');
    assert.match((await haul(w.server.url, ['nodes'])).out, /node-b\s+alive/);
  });
});
