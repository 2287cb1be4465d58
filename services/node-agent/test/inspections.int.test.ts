import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJson, encodeJson, signedRequest, subjects, type Trust } from '@haul/bus';
import type { InspectReply } from '@haul/schemas';
import { startWorld, type World } from '@haul/test';

/**
 * A node agent answers an inspection of a CT (haul.inspect.<node>, for haul.api.check) only when a coordinator signed
 * it: the answer shows the host's disks and config. The requests come over the coordinator's own connection (only a
 * coordinator may publish there), signed or not as each case says.
 */
let w: World;
before(async () => {
  w = await startWorld({ sharedDisks: 1 });
  await w.startAgent('node-a');
});
after(async () => {
  await w?.stop();
});

const subject = () => subjects.inspect('node-a');
const body = encodeJson({ ctid: '101' });

/** An inspection of CT 101 on node-a with these signature headers; the agent's answer. */
async function inspect(signature: ReturnType<Trust['sign']>): Promise<InspectReply> {
  const nc = await w.connectAs('coordinator');
  const m = await signedRequest(nc, subject(), body, signature, 10_000);
  return decodeJson(m.data) as InspectReply;
}
const refusal = (r: InspectReply) => ('error' in r ? [r.error.code, r.error.message] : undefined);

describe('node agent: inspections, answered to a coordinator only', () => {
  it('answers one a coordinator signed with what it sees of the CT', async () => {
    const r = await inspect(w.identities.trust('coordinator').sign(subject(), body));
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.inspection.configPresent, true);
  });

  it('refuses one unsigned, one signed by an agent, and one whose signature is of other bytes', async () => {
    assert.deepEqual(refusal(await inspect(undefined)), [
      'HAUL_COMMAND_UNAUTHENTICATED',
      'inspection refused: unsigned',
    ]);
    assert.deepEqual(refusal(await inspect(w.identities.trust('agent@node-b').sign(subject(), body))), [
      'HAUL_COMMAND_UNAUTHENTICATED',
      'inspection refused: signed by agent@node-b, not a coordinator',
    ]);
    const other = w.identities.trust('coordinator').sign(subject(), encodeJson({ ctid: '102' }));
    const forged = refusal(await inspect(other));
    assert.equal(forged?.[0], 'HAUL_COMMAND_UNAUTHENTICATED');
    assert.match(String(forged?.[1]), /^inspection refused: /);
  });
});
