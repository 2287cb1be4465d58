import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEventLog, encodeJson, subjects } from '@haul/bus';
import { commandIdFor, errorCodes, once } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { awaitEvent, outcomeOf, publishAs, startWorld, stepIntended, type World } from '@haul/test';

/**
 * The source's unmount after the commit (umountSource), against the emulated vzctl and ploop: the target merges the
 * origin snapshot into the shared disks' base after it, so it must not succeed while a disk of the CT is still
 * attached on the source. vzctl counts a CT as mounted by its root disk alone (libvzctl lib/vz.c
 * vzctl2_env_is_mounted), so its 40 "Container is not mounted" says nothing of the other disks.
 */
const validators = createValidators();
let w: World;
before(async () => {
  w = await startWorld({ sharedDisks: 1 });
  await w.startAgent('node-a');
});
after(async () => {
  await w?.stop();
});

const rootDd = () =>
  join(w.cluster.nodeRoot('node-a'), 'vz', 'private', '101', 'root.hdd', 'DiskDescriptor.xml');
const sharedDd = () => join(w.shared[0]!, 'DiskDescriptor.xml');
const deviceOf = async (dd: string) =>
  /^device:[ \t]*(\S*)/m.exec(await w.cluster.ok('node-a', 'ploop', ['info', '-d', dd]))?.[1] ?? '';

/** What a host step's result says it did. */
const actionsOf = (e: MigrationEvent) =>
  e.type === 'StepSucceeded' && 'actions' in e.data.result ? e.data.result.actions : undefined;

/** umountSource of CT 101 as the coordinator sends it (intended in the log first); its outcome. */
async function umountSource(mid: string, attempt = 1) {
  const cmd: StepCommand = {
    commandId: commandIdFor(mid, 'umountSource', once, attempt),
    migrationId: mid,
    node: 'node-a',
    executor: 'agent',
    attempt,
    step: 'umountSource',
    timeoutMs: 30_000,
    args: { ctid: '101' },
  };
  const trust = w.identities.trust('coordinator');
  const nc = await w.connectAs('coordinator');
  await createEventLog(nc, validators, trust).append(stepIntended(cmd));
  await publishAs(nc, trust, subjects.commands('node-a', 'agent'), encodeJson(cmd), cmd.commandId);
  return awaitEvent(w.eventLog, mid, outcomeOf(cmd.commandId), 30_000);
}

describe("node agent: the source's unmount leaves no disk of the CT attached", () => {
  it('given the CT mounted, then every disk is detached and the step says unmounted', async () => {
    await w.cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'mount', '101']);
    assert.notEqual(await deviceOf(sharedDd()), '');
    const outcome = await umountSource('m-umount-whole');
    assert.equal(outcome.type, 'StepSucceeded', JSON.stringify(outcome.data));
    assert.deepEqual(actionsOf(outcome), ['unmounted']);
    assert.deepEqual([await deviceOf(rootDd()), await deviceOf(sharedDd())], ['', '']);
  });

  it('given the root disk unmounted alone (vzctl: not mounted), then the step fails naming the attached disk, and succeeds once it is detached', async () => {
    await w.cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'mount', '101']);
    await w.cluster.ok('node-a', 'ploop', ['umount', rootDd()]);
    const device = await deviceOf(sharedDd());
    assert.notEqual(device, '');
    // When the source's unmount runs: vzctl exits 40, and the shared disk is still attached
    const failed = await umountSource('m-umount-half');
    assert.equal(failed.type, 'StepFailed', JSON.stringify(failed.data));
    assert.ok(failed.type === 'StepFailed');
    assert.equal(failed.data.error.code, errorCodes.diskAttached);
    assert.ok(failed.data.error.message.includes(`${sharedDd()} (${device})`), failed.data.error.message);
    assert.equal(await deviceOf(sharedDd()), device, 'the step changed nothing');
    // Then, the disk detached, its next attempt succeeds
    await w.cluster.ok('node-a', 'ploop', ['umount', sharedDd()]);
    const retried = await umountSource('m-umount-half', 2);
    assert.equal(retried.type, 'StepSucceeded', JSON.stringify(retried.data));
    assert.deepEqual(actionsOf(retried), ['already unmounted']);
  });
});
