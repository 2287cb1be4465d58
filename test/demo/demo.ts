/**
 * `npm run demo`: a real live migration on this machine. A local nats-server with JetStream, two emulated nodes
 * (each with a node agent and an image streamer), the coordinator, and a CT with a local and a shared ploop disk
 * whose memory and disks keep changing. It migrates the CT with pre-dump iterations, shows the event stream as
 * ops see it, prints the stats, checks the data-safety invariants, and stops everything it started.
 */
import { liveForwardSteps } from '@haul/domain';
import { followToEnd, formatEvent, formatStats } from '@haul/cli';
import type { MigrationEvent, MigrationStats } from '@haul/schemas';
import { injections, startWorld, type World } from '@haul/test';

const help = `npm run demo -- [options]

  --memory-mb N        CT memory (default 256)
  --dirty-rate N       pages the CT dirties per second (default 3000)
  --disk-writes N      blocks the CT writes per second (default 40)
  --shared-disks N     shared ploop disks besides the local root disk (default 1)
  --local-disk-mb N    MiB of data in the CT's local root disk (default 0: a few blocks)
  --mode live|restart  migration mode (default live)
  --max-downtime-ms N  iterate until the predicted downtime fits (policy: proceed)
  --fail-at STEP       make one host step fail on purpose to show a rollback; one of:
                       ${liveForwardSteps.join(', ')}
  --keep               keep the temporary folders (printed at the end)
  --insecure           no identities, permissions, signatures or TLS (debugging only; every service warns)

By default the cluster is secured as in production: \`haul init-cluster\` makes the identities, the nats-server
configuration with their permissions, and the certificates; every service logs in as its own identity over mutual
TLS (it presents its identity's certificate), signs what it sends and believes only what its registry's keys signed.`;

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  console.log(help);
  process.exit(0);
}
const opt = (name: string, dflt?: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const failAt = opt('--fail-at');
if (failAt && !(failAt in injections)) {
  console.error(`--fail-at: unknown step ${failAt}; one of ${liveForwardSteps.join(', ')}`);
  process.exit(2);
}
const memoryMb = Number(opt('--memory-mb', '256'));
const dirtyRate = Number(opt('--dirty-rate', '3000'));
const mode = opt('--mode', 'live') as 'live' | 'restart';
const tty = process.stdout.isTTY;
const say = (s: string) => console.log(tty ? `\x1b[1m▸ ${s}\x1b[0m` : `▸ ${s}`);
const mark = (ok: boolean) => (ok ? (tty ? '\x1b[32m✓\x1b[0m' : '✓') : tty ? '\x1b[31m✗\x1b[0m' : '✗');
const inj = failAt ? injections[failAt] : undefined;

/**
 * Rejects when a service the demo started dies on its own (one it stops and starts again on purpose does not count):
 * the migration would then wait on it for ever, a step timeout and its retries at a time, and the demo with it.
 */
function aServiceDies(w: World): Promise<never> {
  return Promise.race(
    [...w.services.values()].map((s) =>
      s.died.then((how) => {
        throw new Error(`${s.name} (pid ${s.pid}) exited on its own (${how}) during the migration`);
      }),
    ),
  );
}

/** haul's targets for this demo, beside what it reached. */
function goals(s: MigrationStats): string {
  const sec = (ms: number | undefined) => (ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`);
  const median = s.downtimeWindow?.overheadMedianMs;
  return [
    `frozen ${sec(s.frozenMs)} (goal ≤ 1.50 s)`,
    `downtime ${sec(s.downtimeMs)} (goal ≤ 1.00 s)`,
    `control overhead per step of the downtime window: median ${median === undefined ? '-' : `${median.toFixed(1)} ms`} (goal ≤ 5 ms)`,
  ].join(', ');
}

/**
 * The local disks' copy, pass by pass: the live passes while the CT ran, and how much of the disk (bytes and time)
 * the frozen window held.
 */
function diskPasses(events: MigrationEvent[]): string[] {
  const passes = events.flatMap((e) => {
    if (e.type !== 'StepSucceeded' || e.data.step !== 'copyLocalDisk') return [];
    const subject = e.data.commandId.split(':').at(-2)!;
    return [{ subject, frozen: !subject.includes('.'), r: e.data.result }];
  });
  if (passes.length === 0) return [];
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const lines = passes.map(
    (p) =>
      `  copyLocalDisk:${p.subject.padEnd(5)} ${p.frozen ? 'frozen' : 'live  '} ${mib(p.r.bytes).padStart(11)} in ${(p.r.durationMs / 1000).toFixed(2)} s`,
  );
  const total = passes.reduce((a, p) => a + p.r.bytes, 0);
  const frozen = passes.filter((p) => p.frozen);
  const inWindow = frozen.reduce((a, p) => a + p.r.bytes, 0);
  const ms = frozen.reduce((a, p) => a + p.r.durationMs, 0);
  lines.push(
    `  inside the frozen window: ${mib(inWindow)} of ${mib(total)} copied (${((100 * inWindow) / Math.max(1, total)).toFixed(1)} %), ${(ms / 1000).toFixed(2)} s of transfer`,
  );
  return lines;
}

say(
  `haul demo: ${mode} migration of CT 101 (${memoryMb} MiB, dirtying ${dirtyRate} pages/s) from node-a to node-b`,
);
const t0 = Date.now();
let w: World | undefined;
let exit = 1;
try {
  w = await startWorld({
    memoryMb,
    dirtyRate,
    diskWrites: Number(opt('--disk-writes', '40')),
    sharedDisks: Number(opt('--shared-disks', '1')),
    localDiskMb: Number(opt('--local-disk-mb', '0')),
    faults: inj?.rules ?? [],
    insecure: argv.includes('--insecure'),
  });
  say(
    w.secrets
      ? `secured: identities, permissions and TLS from \`haul init-cluster\` (${w.secrets.dir}); every message signed`
      : 'INSECURE (--insecure): no identities, permissions, signatures or TLS',
  );
  say(
    `nats-server with JetStream on ${w.server.url} (pid ${w.server.pid}); emulated nodes under ${w.cluster.dir}`,
  );
  say(
    `CT 101: local disk ${w.cluster.nodeRoot('node-a')}/vz/private/101/root.hdd, shared ${w.shared.join(', ') || '(none)'}`,
  );
  await w.startCt();
  await w.startAll(inj?.streamerEnv);
  say(`services: ${[...w.services.values()].map((s) => `${s.name} (pid ${s.pid})`).join(', ')}`);
  const unplant = inj?.plant?.(w);
  if (failAt)
    say(
      `a failure is planted at ${failAt}: expect ${inj!.expect === 'MigrationRolledBack' ? 'a rollback' : 'the migration to roll forward'}`,
    );
  const base = await w.baseline('node-a');
  const before = JSON.parse(await w.cluster.ok('node-a', 'haul-emu', ['checksum-mem', '101'])) as {
    memSha256: string;
  };
  say(`memory checksum on node-a before: ${before.memSha256.slice(0, 16)}…`);
  const req: Parameters<World['api']['migrate']>[0] = {
    requestId: `demo-${Date.now()}`,
    ctid: '101',
    source: 'node-a',
    target: 'node-b',
    mode,
    sharedDisks: w.shared,
    preDump: 'on',
  };
  const budget = opt('--max-downtime-ms');
  if (budget) Object.assign(req, { maxDowntimeMs: Number(budget), downtimePolicy: 'proceed' });
  const reply = await w.api.migrate(req);
  if (!reply.ok) throw new Error(`rejected: ${reply.error.code} ${reply.error.message}`);
  say(`migrate request accepted: ${reply.migrationId}   — the event stream, as \`haul events -f\` shows it:`);
  const watch = inj?.watch?.(w);
  const end = await Promise.race([
    followToEnd(w.eventLog, reply.migrationId, (e, seq) => {
      console.log(formatEvent(e, seq));
      watch?.(e);
    }),
    aServiceDies(w),
  ]);
  unplant?.();
  say(
    end.type === 'MigrationCompleted' ? 'Migration succeeded' : `Migration rolled back: ${end.data.reason}`,
  );
  console.log(formatStats(end.data.stats));
  const passes = diskPasses(await w.events(reply.migrationId));
  if (passes.length > 0) {
    say('local disk copy, pass by pass:');
    for (const l of passes) console.log(l);
  }
  say(goals(end.data.stats));
  const home = end.type === 'MigrationCompleted' ? 'node-b' : 'node-a';
  const after = JSON.parse(await w.cluster.ok(home, 'haul-emu', ['checksum-mem', '101'])) as {
    restoredSha256?: string;
  };
  if (after.restoredSha256)
    say(
      `memory checksum restored on ${home}: ${after.restoredSha256.slice(0, 16)}… (equal to the checksum at the freeze)`,
    );
  say('data-safety invariants:');
  const broken = await w.brokenInvariants(reply.migrationId, base);
  const checks = [
    'the CT runs on exactly one node',
    mode === 'live'
      ? 'memory at the freeze = memory after restore (or the source CT kept running)'
      : 'the CT restarted on the target (restart mode)',
    'every disk = its content before + every block the CT wrote (journal)',
    'no DiskDescriptor.xml.copy, .copy.lck, .copy.xml link or orphan delta on shared storage',
    'no stale local disk, bare private area or image folder left on any node; a ploop private area (.ve.layout → 5) where the CT runs',
    'the emulated storage never saw a double read-write attach',
    'the log ends with exactly one terminal event',
  ];
  if (broken.length === 0) for (const c of checks) console.log(`  ${mark(true)} ${c}`);
  else for (const b of broken) console.log(`  ${mark(false)} ${b}`);
  exit = broken.length === 0 && end.type === (inj?.expect ?? 'MigrationCompleted') ? 0 : 1;
} catch (err) {
  console.error(`demo failed: ${(err as Error).stack ?? String(err)}`);
  for (const s of w?.services.values() ?? [])
    console.error(`--- ${s.name} (last lines)\n${s.lines.slice(-8).join('\n')}`);
} finally {
  if (argv.includes('--keep') && w) {
    say(`kept ${w.cluster.dir}; stopping processes`);
    for (const s of w.services.values()) await s.kill('SIGTERM');
    await w.server.kill('SIGTERM');
    w.cluster.destroy({ keepFiles: true });
  } else await w?.stop();
  say(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s; everything the demo started is stopped`);
}
process.exit(exit);
