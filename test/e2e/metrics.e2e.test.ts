import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { followToEnd } from '@haul/cli';
import { limits, subjects } from '@haul/bus';
import type { StepCommand } from '@haul/schemas';
import {
  injections,
  outcomeOf,
  publishAs,
  promtoolBinary,
  scrape,
  scrapeUntil,
  startRunningWorld,
  startService,
  until,
  type Exposition,
  type World,
} from '@haul/test';

const services = ['coordinator', 'agent-node-a', 'agent-node-b', 'streamer-node-a', 'streamer-node-b'];
const consumers: Record<string, [string, string]> = {
  coordinator: ['HAUL_EVENTS', 'coordinator'],
  'agent-node-a': ['HAUL_COMMANDS', 'agent-node-a'],
  'agent-node-b': ['HAUL_COMMANDS', 'agent-node-b'],
  'streamer-node-a': ['HAUL_COMMANDS', 'streamer-node-a'],
  'streamer-node-b': ['HAUL_COMMANDS', 'streamer-node-b'],
};

/** promtool's lint of haul's own metrics (prom-client's nodejs_* defaults break its _total rule). */
function promtoolComplaints(e: Exposition): string {
  const ours = e.text
    .split('\n')
    .filter((l) => /^(# (HELP|TYPE) )?haul_/.test(l))
    .join('\n');
  const r = spawnSync(promtoolBinary(), ['check', 'metrics'], { input: `${ours}\n`, encoding: 'utf8' });
  if (r.error) throw r.error;
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`;
}

/** The children of `pid` whose command line includes `word` (read from /proc: the emulated tools a service runs). */
function childrenRunning(pid: number, word: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(word)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const heartbeatAge = (e: Exposition, node: string) => {
  const [s] = e.find('haul_node_heartbeat_age_seconds', { node });
  return s?.value ?? NaN;
};

const count = (e: Exposition, name: string, labels: Record<string, string>) =>
  e.value(`${name}_count`, labels);

describe('Prometheus metrics of every service during real migrations', () => {
  let w: World;
  /** The completed live migration (node-a → node-b): its commands have their outcomes in the log. */
  let liveId: string | undefined;
  const url = (s: string) => w.metricsUrl(s);
  before(async () => {
    // The target's first `vzctl status` fails: the first migration rolls back at its preflight, the second completes.
    w = await startRunningWorld({
      metrics: true,
      sharedDisks: 1,
      memoryMb: 32,
      dirtyRate: 200,
      faults: injections['preflightTarget']?.rules ?? [],
    });
  });
  after(() => w?.stop());

  it('every service serves a parseable exposition with its consumer’s pending counts; both heartbeats are fresh', async () => {
    for (const s of services) {
      const e = await scrape(url(s));
      const [stream, consumer] = consumers[s]!;
      assert.equal(e.find('haul_consumer_pending_messages', { stream, consumer }).length, 1, s);
      assert.equal(e.find('haul_consumer_ack_pending_messages', { stream, consumer }).length, 1, s);
      assert.ok(e.find('process_resident_memory_bytes').length === 1, `${s}: process metrics`);
      assert.ok(!promtoolComplaints(e), `${s}: ${promtoolComplaints(e)}`);
    }
    const c = await scrape(url('coordinator'));
    assert.equal(c.value('haul_migrations_finished_total', { outcome: 'completed' }), 0);
    for (const node of ['node-a', 'node-b']) {
      const age = c.find('haul_node_heartbeat_age_seconds', { node });
      assert.equal(age.length, 1, `heartbeat age of ${node}`);
      assert.ok(age[0]!.value >= 0 && age[0]!.value < limits.nodeStaleMs / 1000, `${node}: ${age[0]!.value}`);
    }
  });

  it('a rollback counts by outcome and phase, and the failed host tool by its exit code', async () => {
    const r = await w.migrate('metrics-rollback');
    assert.ok(r.ok, JSON.stringify(r));
    if (!r.ok) return;
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    assert.equal(end.type, 'MigrationRolledBack');
    // Counted when the coordinator projects the status, just after the terminal event is in the log (as below).
    const c = await scrapeUntil(
      url('coordinator'),
      (e) => e.value('haul_migrations_finished_total', { outcome: 'rolled-back' }) >= 1,
    );
    assert.equal(
      c.value('haul_migrations_finished_total', { outcome: 'rolled-back', phase: 'preflight' }),
      1,
    );
    assert.equal(count(c, 'haul_migration_duration_seconds', { outcome: 'rolled-back' }), 1);
    const b = await scrape(url('agent-node-b'));
    assert.equal(b.value('haul_tool_failures_total', { tool: 'vzctl', exit_code: '3', reason: 'exit' }), 1);
    assert.equal(count(b, 'haul_step_duration_seconds', { step: 'preflightTarget', outcome: 'failed' }), 1);
    const a = await scrape(url('agent-node-a'));
    assert.equal(a.find('haul_tool_failures_total').length, 0, 'no tool failed on node-a');
  });

  it('a completed live migration moves every metric it touches', async () => {
    const before = await scrape(url('coordinator'));
    assert.equal(before.value('haul_migrations_finished_total', { outcome: 'completed' }), 0);
    // Throttled so that its first transfer is still running when its first progress is logged.
    const r = await w.migrate('metrics-live', { bandwidthLimitMBps: 8, maxIterations: 1 });
    assert.ok(r.ok, JSON.stringify(r));
    if (!r.ok) return;
    // The throttled memory transfer, seen while it moves (the local disk's pass may have come and gone before).
    await scrapeUntil(
      url('streamer-node-a'),
      (e) => e.value('haul_stream_sent_bytes_total') > 0 && e.value('haul_stream_active_transfers') === 1,
    );
    await scrapeUntil(
      url('coordinator'),
      (e) => e.value('haul_migrations_active', { phase: 'iterating' }) === 1,
    );

    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    assert.equal(end.type, 'MigrationCompleted');
    if (end.type !== 'MigrationCompleted') return;
    liveId = r.migrationId;
    const stats = end.data.stats;
    // The coordinator counts the end when it projects the status, just after the terminal event is in the log:
    // wait for that count rather than scrape once.
    const c = await scrapeUntil(
      url('coordinator'),
      (e) => e.value('haul_migrations_finished_total', { outcome: 'completed', mode: 'live' }) >= 1,
    );
    assert.equal(c.value('haul_migrations_finished_total', { outcome: 'completed', mode: 'live' }), 1);
    assert.equal(count(c, 'haul_migration_duration_seconds', { outcome: 'completed' }), 1);
    assert.equal(count(c, 'haul_migration_downtime_seconds', { outcome: 'completed' }), 1);
    assert.equal(
      c.value('haul_migration_downtime_seconds_sum', { outcome: 'completed' }),
      stats.downtimeMs! / 1000,
    );
    assert.equal(count(c, 'haul_migration_frozen_seconds', { outcome: 'completed' }), 1);
    assert.equal(c.value('haul_migration_iterations_sum', { outcome: 'completed' }), stats.iterations.length);
    assert.equal(
      c.value('haul_migration_streamed_bytes_total', { outcome: 'completed' }),
      stats.bytesStreamed,
    );
    assert.equal(
      c.find('haul_migrations_active').reduce((n, s) => n + s.value, 0),
      0,
      'no migration is active any more',
    );

    const s = await scrape(url('streamer-node-a'));
    assert.ok(s.value('haul_stream_sent_bytes_total') >= stats.bytesStreamed!);
    assert.equal(s.value('haul_stream_active_transfers'), 0);
    assert.ok(s.value('haul_stream_transfers_total', { step: 'streamImages', outcome: 'succeeded' }) >= 2);
    assert.ok(count(s, 'haul_stream_transfer_rate_bytes_per_second', { step: 'streamImages' }) >= 2);

    const b = await scrape(url('agent-node-b'));
    assert.equal(count(b, 'haul_step_duration_seconds', { step: 'restore', outcome: 'succeeded' }), 1);
    assert.ok(b.value('haul_step_tool_seconds_total', { step: 'restore' }) > 0);
    for (const e of [c, s, b]) assert.ok(!promtoolComplaints(e), promtoolComplaints(e));
  });

  it('commands of a busy migration wait in its agent’s hands, other migrations’ run meanwhile, and all drain once it ends', async (t) => {
    assert.ok(liveId, 'the completed migration ran');
    const [stream, consumer] = consumers['agent-node-b']!;
    const pending = (e: Exposition) => e.value('haul_consumer_pending_messages', { stream, consumer });
    const inFlight = (e: Exposition) => e.value('haul_consumer_ack_pending_messages', { stream, consumer });
    const b = url('agent-node-b');
    await scrapeUntil(b, (e) => pending(e) === 0 && inFlight(e) === 0, 60_000);
    const agent = w.services.get('agent-node-b')!;
    const duplicates = () => agent.lines.filter((l) => l.includes('duplicate delivery')).length;
    const skippedBefore = duplicates();
    // A migration back whose first `vzctl status` on node-b hangs holds node-b's agent busy with its preflight.
    w.setFaults([{ tool: 'vzctl', sub: 'status', node: 'node-b', action: 'hang' }]);
    const r = await w.migrate('metrics-backlog', { source: 'node-b', target: 'node-a' });
    assert.ok(r.ok, JSON.stringify(r));
    if (!r.ok) return;
    // Its preflight's `vzctl status` hangs (until the agent's 30 s limit for it or this test kills it): taken, not acked.
    await scrapeUntil(b, (e) => inFlight(e) >= 1, 25_000);
    const intentsOnB = async (mid: string) =>
      (await w.events(mid)).flatMap((e) =>
        e.type === 'StepIntended' && e.data.node === 'node-b' && e.data.executor === 'agent' ? [e.data] : [],
      );
    const busy: StepCommand | undefined = (await intentsOnB(r.migrationId))[0];
    const old: StepCommand | undefined = (await intentsOnB(liveId)).at(-1);
    assert.ok(busy && old, 'a command of each migration for node-b’s agent');
    const held = inFlight(await scrapeUntil(b, (e) => inFlight(e) >= 1, 1_000));
    // Copies of both commands, signed as the coordinator signs, without a message id so that JetStream keeps each
    // one: the busy migration's wait behind its step, the finished migration's are skipped as duplicates at once.
    const coordinatorNc = await w.connectAs('coordinator');
    const signer = w.identities.trust('coordinator');
    const copies = 3;
    const subject = subjects.commands('node-b', 'agent');
    for (const c of [busy, old])
      for (let i = 0; i < copies; i++)
        await publishAs(coordinatorNc, signer, subject, Buffer.from(JSON.stringify(c)));
    const backlog = await scrapeUntil(b, (e) => inFlight(e) >= held + copies && pending(e) === 0, 20_000);
    t.diagnostic(`while busy: ack pending ${inFlight(backlog)}, pending ${pending(backlog)}`);
    await until(
      () => duplicates() >= skippedBefore + copies,
      'the finished migration’s copies skipped',
      20_000,
    );
    const skippedAt = Date.now();

    // The hung tool is killed: the step fails, the agent takes the busy migration's copies (duplicates), all drain.
    w.setFaults([]);
    for (const pid of childrenRunning(agent.pid, 'status'))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // ended meanwhile (the agent's own time limit)
      }
    await scrapeUntil(b, (e) => pending(e) === 0 && inFlight(e) === 0, 60_000);
    const end = await followToEnd(w.eventLog, r.migrationId, () => {});
    assert.equal(end.type, 'MigrationRolledBack');
    assert.ok(duplicates() >= skippedBefore + 2 * copies, 'each copy was skipped as a duplicate');
    // The finished migration's copies were skipped while the busy migration's step still ran: its outcome came after.
    const busyEnd = (await w.events(r.migrationId)).find(outcomeOf(busy.commandId));
    assert.ok(busyEnd && Date.parse(busyEnd.time) > skippedAt, 'skipped before the busy step ended');
  });

  it('a node whose agent stops heartbeating ages in the coordinator’s metrics, and is fresh again once it restarts', async () => {
    const c = url('coordinator');
    const beat = limits.heartbeatMs / 1000;
    await scrapeUntil(c, (e) => heartbeatAge(e, 'node-b') < 2 * beat, 60_000);
    await w.services.get('agent-node-b')!.kill('SIGKILL');
    // Polled, not slept: the age passes twice the heartbeat period only because no beat comes any more.
    const stale = await scrapeUntil(c, (e) => heartbeatAge(e, 'node-b') > 2 * beat, 60_000);
    assert.ok(heartbeatAge(stale, 'node-a') < limits.nodeStaleMs / 1000, 'node-a’s agent still beats');
    await w.startAgent('node-b');
    await scrapeUntil(c, (e) => heartbeatAge(e, 'node-b') < 2 * beat, 60_000);
  });

  it('a service given a bad metrics port exits 2 at start, naming the setting', async () => {
    for (const [service, entry] of [
      ['coordinator', 'services/coordinator/src/main.ts'],
      ['agent', 'services/node-agent/src/main.ts'],
      ['streamer', 'services/image-streamer/src/main.ts'],
    ] as const) {
      const p = startService(`bad-metrics-${service}`, entry, {
        ...process.env,
        HAUL_NATS_URL: w.server.url,
        HAUL_NODE: 'node-x',
        HAUL_STREAM_ROOTS: '/nonexistent',
        HAUL_HOST_ROOT: w.cluster.nodeRoot('node-a'),
        HAUL_IMAGE_ROOT: w.imageRoot('node-a'),
        HAUL_METRICS_PORT: '70000',
        // Every other setting is fine: plaintext and unsigned on purpose, so that only the metrics port is wrong.
        HAUL_INSECURE: '1',
      });
      assert.equal(await p.exited, 2, service);
      assert.ok(
        p.lines.some((l) => l.includes('metrics.port (HAUL_METRICS_PORT="70000") must be <= 65535')),
        p.lines.join('\n'),
      );
    }
  });
});
