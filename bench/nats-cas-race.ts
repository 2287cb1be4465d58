// Whether a nats-server release checks an append's expected last subject sequence atomically in a replicated stream,
// the rule every fence of haul rests on (packages/bus/src/streams.ts, casSafeFrom). Starts three servers of the
// release on loopback (the tests' harness), then, per round, stores a message on a fresh subject and sends two
// appends that both expect it as the last, at once, through two different servers; prints one JSON line: in how many
// rounds both were stored (0 where the check is atomic).
//
//   node --import tsx bench/nats-cas-race.ts [installed|newer|current] [rounds, default 300]
//
// Needs the releases `bash scripts/bootstrap.sh --tests` fetches (newer, current); `installed` is the one on PATH.
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { natsReleases, startNatsCluster, type NatsRelease } from '@haul/test';

const release = (process.argv[2] ?? 'installed') as NatsRelease;
const rounds = Number(process.argv[3] ?? 300);
if (!natsReleases.includes(release) || !Number.isInteger(rounds) || rounds < 1) {
  process.stderr.write(`usage: nats-cas-race.ts [${natsReleases.join('|')}] [rounds ≥ 1]\n`);
  process.exit(64);
}
const cluster = await startNatsCluster(3, { release });
try {
  const ncs = await Promise.all(cluster.servers.map((s) => connect({ servers: s.url })));
  const jsm = await jetstreamManager(ncs[0]!);
  await jsm.streams.add({ name: 'RACE', subjects: ['race.>'], num_replicas: 3 });
  const js = ncs.map((nc) => jetstream(nc));
  const stored = [0, 0, 0];
  for (let i = 0; i < rounds; i++) {
    const subject = `race.r${i}`;
    const first = await js[0]!.publish(subject, 'first', { expect: { lastSubjectSequence: 0 } });
    const both = await Promise.allSettled(
      [1, 2].map((n) =>
        js[n]!.publish(subject, `append ${n}`, { expect: { lastSubjectSequence: first.seq } }),
      ),
    );
    stored[both.filter((r) => r.status === 'fulfilled').length]!++;
  }
  const version = ncs[0]!.info?.version;
  process.stdout.write(
    `${JSON.stringify({ release, version, rounds, bothStored: stored[2], oneStored: stored[1], noneStored: stored[0] })}\n`,
  );
  for (const nc of ncs) await nc.close();
} finally {
  await cluster.stop();
}
