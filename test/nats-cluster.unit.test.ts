/**
 * When a test's nats-server cluster is ready (test/support/nats-server.ts metaGroupFormed): what its servers' /jsz say
 * of the JetStream meta group. The views named "stuck" are the ones nats-server 2.10.27 gave at a cold start that
 * left a server out of the group for good.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metaGroupFormed, type MetaView } from './support/nats-server.ts';

const follower = (server: string, leader: string, clusterSize = 3): MetaView => ({
  server,
  leader,
  clusterSize,
});
const leaderOf = (server: string, peers: [string, boolean][], clusterSize = 3): MetaView => ({
  server,
  leader: server,
  clusterSize,
  replicas: peers.map(([name, current]) => ({ name, current })),
});

/** n2 leading, n1 and n3 its current peers. */
const leaderOfAll = (): MetaView =>
  leaderOf('n2', [
    ['n1', true],
    ['n3', true],
  ]);

describe('a cluster’s JetStream meta group, as its servers report it', () => {
  it('given one leader with every other server a current peer, and every server following it, then it formed', () => {
    const views = [follower('n1', 'n2'), leaderOfAll(), follower('n3', 'n2')];
    assert.equal(metaGroupFormed(views, 3), true);
  });

  it('given a group of two that left the third server out (2.10.27 at a cold start), then it did not form', () => {
    // As read 20 s after the start: the third server follows the leader, which never counts it.
    const stuck = [follower('n1', 'n3', 2), follower('n2', 'n3', 2), leaderOf('n3', [['n1', true]], 2)];
    assert.equal(metaGroupFormed(stuck, 3), false);
  });

  it('given a peer not current yet, then it did not form', () => {
    const views = [
      follower('n1', 'n2'),
      leaderOf('n2', [
        ['n1', true],
        ['n3', false],
      ]),
      follower('n3', 'n2'),
    ];
    assert.equal(metaGroupFormed(views, 3), false);
  });

  it('given a server that follows no leader yet, or another one, then it did not form', () => {
    const leader = leaderOfAll();
    assert.equal(metaGroupFormed([follower('n1', 'n2'), leader, { server: 'n3', clusterSize: 3 }], 3), false);
    assert.equal(metaGroupFormed([follower('n1', 'n2'), leader, follower('n3', 'n1')], 3), false);
  });

  it('given a server that did not answer, or no leader at all, then it did not form', () => {
    const leader = leaderOfAll();
    assert.equal(
      metaGroupFormed([follower('n1', 'n2'), leader, { server: 'n3', error: 'fetch failed' }], 3),
      false,
    );
    assert.equal(metaGroupFormed([follower('n1', 'n2'), leader], 3), false);
    const none = ['n1', 'n2', 'n3'].map((server) => ({ server, clusterSize: 3 }));
    assert.equal(metaGroupFormed(none, 3), false);
  });
});
