/**
 * The nats-server clusters tests start (test/support/nats-server.ts startNatsCluster): returned once their JetStream
 * meta group has formed, on every release, and started again when it has not or when a server did not start.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { liveProcesses, retryTransient } from '@haul/bus';
import { natsReleases, startNatsCluster, type NatsServerOptions } from '@haul/test';

/** This process's children that are live now. */
const children = (): number[] =>
  liveProcesses()
    .filter((p) => p.ppid === process.pid)
    .map((p) => p.pid);

describe('a test’s nats-server cluster', () => {
  for (const release of natsReleases)
    it(`on the ${release} release, given it started, then a stream with a replica on each server is placed`, async () => {
      const cluster = await startNatsCluster(3, { release });
      // Stopped however the test ends: a server left running would keep this file's process alive
      const nc = await connect({ servers: cluster.urls.split(',') }).catch(async (err: unknown) => {
        await cluster.stop();
        throw err;
      });
      try {
        // As haul's own calls do (ensureTopology): the meta group has every server when startNatsCluster returns, but
        // its leader may not have had each one's statistics yet, and places nothing there until it has ("no suitable
        // peers for placement, peer offline", seen on 2.10.27 with the integration tier beside it), a moment later.
        const jsm = await jetstreamManager(nc);
        const info = await retryTransient(() =>
          jsm.streams.add({
            name: 'PLACED',
            subjects: ['placed'],
            num_replicas: 3,
            storage: StorageType.File,
          }),
        );
        assert.equal(info.config.num_replicas, 3);
        assert.equal(info.cluster?.replicas?.length, 2, JSON.stringify(info.cluster));
      } finally {
        await nc.close();
        await cluster.stop();
      }
    });

  it('given a meta group that does not form in its budget, then it is started four times, fails naming what each server said, and leaves no server or folder', async () => {
    // Given a group that never shows as formed (a cold start's may form before its first view is read: a budget of
    // 0 alone let a start succeed in 5 of 60 calls, four loops side by side)
    // When the cluster is started
    const { err, left } = await startThatFails({ formBudgetMs: 0, groupFormed: () => false });

    // Then it fails, saying how many starts and what each server reported of the group the last time
    assert.match(
      err.message,
      /did not start in 4 starts; the last: the JetStream meta group did not form in 0 s/,
    );
    for (const server of ['n1', 'n2', 'n3']) assert.match(err.message, new RegExp(`${server}: `));
    // and no server it started is left, nor its folder
    assert.deepEqual(left, { children: [], files: [] });
  });

  it('given servers that do not start, then it is started four times, fails with what a server said, and leaves no server or folder', async () => {
    // Given servers that end before they are ready, as one does whose port was taken since it was found free (here:
    // a configuration nats-server refuses)
    const secrets = mkdtempSync(join(tmpdir(), 'haul-natsc-secrets-'));
    writeFileSync(join(secrets, 'nats-server.conf'), 'listen: {{ not a configuration\n');
    try {
      // When the cluster is started
      const { err, left } = await startThatFails({ secrets });

      // Then it fails after four starts, with the server's own words
      assert.match(
        err.message,
        /did not start in 4 starts; the last: a server did not start: nats-server exited/,
      );
      assert.match(err.message, /secrets\.conf/);
      assert.deepEqual(left, { children: [], files: [] });
    } finally {
      rmSync(secrets, { recursive: true, force: true });
    }
  });
});

/**
 * Start a cluster that is to fail, its folder in a temporary folder of its own: the error, and what is left after it
 * of the servers it started (this process's new children) and of its files.
 */
async function startThatFails(
  opts: NatsServerOptions,
): Promise<{ err: Error; left: { children: number[]; files: string[] } }> {
  const tmp = mkdtempSync(join(tmpdir(), 'haul-natsc-test-'));
  const before = new Set(children());
  const saved = process.env['TMPDIR'];
  process.env['TMPDIR'] = tmp; // where startNatsCluster makes its folder (os.tmpdir reads it at each call)
  try {
    const err = await startNatsCluster(3, opts).then(
      async (started) => {
        await started.stop();
        return undefined;
      },
      (e: unknown) => e,
    );
    assert.ok(err instanceof Error, `the start did not fail: ${String(err)}`);
    return { err, left: { children: children().filter((p) => !before.has(p)), files: readdirSync(tmp) } };
  } finally {
    if (saved === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = saved;
    rmSync(tmp, { recursive: true, force: true });
  }
}
