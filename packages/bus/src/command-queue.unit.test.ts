import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ackSubjectInfo } from './command-queue.ts';

describe('ackSubjectInfo: what an ack subject names', () => {
  it('reads the short form and the form with a domain and an account hash (nats-server 2.10)', () => {
    const want = { stream: 'HAUL_COMMANDS', consumer: 'agent-node-a', streamSeq: 42, deliverySeq: 7 };
    assert.deepEqual(ackSubjectInfo('$JS.ACK.HAUL_COMMANDS.agent-node-a.2.42.7.1764950400000000000.0'), want);
    assert.deepEqual(
      ackSubjectInfo('$JS.ACK.hub.ACCHASH.HAUL_COMMANDS.agent-node-a.2.42.7.1764950400000000000.0.r4nd'),
      want,
    );
  });

  it('names nothing for another subject, a short one, or sequences that are not numbers', () => {
    for (const s of [
      '_INBOX.abc.def',
      '$JS.ACK.HAUL_COMMANDS.agent-node-a.2.42',
      '$JS.API.HAUL_COMMANDS.agent-node-a.2.42.7.1.0',
      '$JS.ACK.HAUL_COMMANDS.agent-node-a.2.x.7.1764950400000000000.0',
    ])
      assert.equal(ackSubjectInfo(s), undefined, s);
  });
});
