import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ackSubjectInfo, checkedOnFirstRead } from './command-queue.ts';
import { limits } from './conventions.ts';

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

describe('checkedOnFirstRead: whether a command may be checked on its log as first read', () => {
  const at = Date.parse('2026-12-07T20:00:00Z');
  const c = (over: Partial<Parameters<typeof checkedOnFirstRead>[0]>) =>
    checkedOnFirstRead({ redelivered: false, storedMs: at, nowMs: at + 20, timeoutMs: 30_000, ...over });

  it('given its first delivery, checked right after its storage, then yes: its outcome and end can be in no log yet', () => {
    assert.equal(c({}), true);
  });

  it('given a redelivery, then no, however young: the delivery before it may have run it, its outcome lost with a read behind', () => {
    assert.equal(c({ redelivered: true }), false);
  });

  it('given a command kept waiting (in its lane, or in the stream while its executor was down) past the bound, then no', () => {
    assert.equal(c({ nowMs: at + limits.commandFreshMs - 1 }), true);
    assert.equal(c({ nowMs: at + limits.commandFreshMs }), false);
  });

  it('given a command whose timeout is short, then the bound is half of it: the coordinator may have given it up by then', () => {
    assert.equal(c({ timeoutMs: 2_000, nowMs: at + 999 }), true);
    assert.equal(c({ timeoutMs: 2_000, nowMs: at + 1_000 }), false);
  });
});
