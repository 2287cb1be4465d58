import assert from 'node:assert/strict';
import {
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEventLog, encodeJson, subjects } from '@haul/bus';
import { commandIdFor, errorCodes, once } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand } from '@haul/schemas';
import { readDescriptorView } from '../src/adapters/descriptor.ts';
import { parsePloopList } from '../src/adapters/tools.ts';
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
const conf = () => join(w.cluster.nodeRoot('node-a'), 'etc', 'vz', 'conf', '101.conf');
/** The devices of node-a and the folder of each one's base delta (`ploop list`, as the agent reads it). */
const attached = async () =>
  parsePloopList(await w.cluster.ok('node-a', 'ploop', ['list'])).map((d) => ({
    device: d.device,
    folder: dirname(d.base),
  }));
const mount = () => w.cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'mount', '101']);

/** What a host step's result says it did. */
const actionsOf = (e: MigrationEvent) =>
  e.type === 'StepSucceeded' && 'actions' in e.data.result ? e.data.result.actions : undefined;
const failureOf = (e: MigrationEvent) => (e.type === 'StepFailed' ? e.data.error : undefined);

/** A step of CT 101 on node-a as the coordinator sends it (intended in the log first); its outcome. */
async function step(mid: string, name: 'umountSource' | 'stopSource', attempt = 1) {
  const cmd: StepCommand = {
    commandId: commandIdFor(mid, name, once, attempt),
    migrationId: mid,
    node: 'node-a',
    executor: 'agent',
    attempt,
    step: name,
    timeoutMs: 30_000,
    args: { ctid: '101' },
  };
  const trust = w.identities.trust('coordinator');
  const nc = await w.connectAs('coordinator');
  await createEventLog(nc, validators, trust).append(stepIntended(cmd));
  await publishAs(nc, trust, subjects.commands('node-a', 'agent'), encodeJson(cmd), cmd.commandId);
  return awaitEvent(w.eventLog, mid, outcomeOf(cmd.commandId), 30_000);
}

describe('node agent: unmounting the CT leaves no disk of it attached', () => {
  it('given the CT mounted, then every disk is detached and the step says unmounted', async () => {
    await mount();
    assert.equal((await attached()).length, 2, 'the root and the shared disk attached');
    const outcome = await step('m-umount-whole', 'umountSource');
    assert.deepEqual(actionsOf(outcome), ['unmounted'], JSON.stringify(outcome.data));
    assert.deepEqual(await attached(), []);
  });

  it("given the root disk unmounted alone (vzctl: not mounted), then the source's unmount fails naming the attached disk, and succeeds once it is detached", async () => {
    await mount();
    await w.cluster.ok('node-a', 'ploop', ['umount', rootDd()]);
    const before = await attached();
    assert.deepEqual(
      before.map((d) => d.folder),
      [dirname(sharedDd())],
    );
    // When the source's unmount runs: vzctl exits 40, and the shared disk is still attached
    const failed = failureOf(await step('m-umount-half', 'umountSource'));
    assert.equal(failed?.code, errorCodes.diskAttached, JSON.stringify(failed));
    assert.match(failed.message, new RegExp(`${before[0]!.device} still holds ${dirname(sharedDd())}/`));
    assert.deepEqual(await attached(), before, 'the step changed nothing');
    // Then, the disk detached, its next attempt succeeds
    await w.cluster.ok('node-a', 'ploop', ['umount', sharedDd()]);
    const retried = await step('m-umount-half', 'umountSource', 2);
    assert.deepEqual(actionsOf(retried), ['already unmounted'], JSON.stringify(retried.data));
  });

  it("given the root disk unmounted alone, then a restart's stop of the source fails the same way (the target mounts the disks next)", async () => {
    await mount();
    await w.cluster.ok('node-a', 'ploop', ['umount', rootDd()]);
    const failed = failureOf(await step('m-stop-half', 'stopSource'));
    assert.equal(failed?.code, errorCodes.diskAttached, JSON.stringify(failed));
    await w.cluster.ok('node-a', 'ploop', ['umount', sharedDd()]);
    assert.deepEqual(await attached(), []);
  });

  /**
   * The shared disk's base image moved to `to` and its descriptor naming it `named` (ploop resolves a relative <File>
   * from the descriptor's real folder, an absolute one as it is), the CT's config naming the disk's folder as `folder`;
   * the disk attached alone through that folder (by hand, or by `attach`). Then the source's unmount fails naming the
   * device. Put back after.
   */
  async function attachedAlone(
    mid: string,
    to: string,
    named: string,
    folder = dirname(sharedDd()),
    attach: (via: string) => Promise<unknown> = (via) => w.cluster.ok('node-a', 'ploop', ['mount', via]),
  ) {
    const dd = sharedDd();
    const [text, confText] = [readFileSync(dd, 'utf8'), readFileSync(conf(), 'utf8')];
    const base = readDescriptorView(dd).images[0]!.file;
    const via = join(folder, 'DiskDescriptor.xml');
    mkdirSync(dirname(to), { recursive: true });
    renameSync(base, to);
    writeFileSync(dd, text.replace(`<File>${basename(base)}</File>`, `<File>${named}</File>`));
    writeFileSync(conf(), confText.replace(`image=${dirname(dd)},`, `image=${folder},`));
    try {
      assert.ok(readFileSync(dd, 'utf8').includes(named), 'the descriptor names the moved image');
      assert.ok(readFileSync(conf(), 'utf8').includes(`image=${folder},`), 'the config names the folder');
      await attach(via);
      const held = realpathSync(to);
      assert.deepEqual(
        (await attached()).map((d) => d.folder),
        [dirname(held)],
      );
      const failed = failureOf(await step(mid, 'umountSource'));
      assert.equal(failed?.code, errorCodes.diskAttached, JSON.stringify(failed));
      assert.ok(failed.message.includes(`still holds ${held}`), failed.message);
    } finally {
      await w.cluster.run('node-a', 'ploop', ['umount', via]);
      renameSync(to, base);
      writeFileSync(dd, text);
      writeFileSync(conf(), confText);
    }
    assert.deepEqual(await attached(), []);
  }

  it('given a disk whose descriptor names its base image by an absolute path in another folder, attached alone, then the unmount fails naming it', async () => {
    const to = join(w.cluster.dir, 'elsewhere', 'root.hds');
    await attachedAlone('m-umount-elsewhere', to, to);
  });

  it('given a disk the config names through a link, whose descriptor names its base image ../beside/ (as ploop writes an image beside its folder), attached alone, then the unmount fails naming it', async () => {
    const link = join(w.cluster.dir, 'via-link');
    symlinkSync(dirname(sharedDd()), link);
    try {
      // From the link's folder, ../beside is below the cluster's parent; ploop reads it from the disk's real folder
      const to = join(dirname(dirname(sharedDd())), 'beside', 'root.hds');
      // Attached by vzctl, which reads the link from the config, then the root disk unmounted alone
      await attachedAlone('m-umount-link', to, '../beside/root.hds', link, async () => {
        await mount();
        await w.cluster.ok('node-a', 'ploop', ['umount', rootDd()]);
      });
    } finally {
      rmSync(link);
    }
  });

  it('given a disk of the config whose folder is gone, then the unmount does not fail on it', async () => {
    // A DISK= entry whose image was removed since (disabled, or a disk vzctl could not mount: lib/disk.c 857–865)
    const text = readFileSync(conf(), 'utf8');
    const gone = join(w.cluster.dir, 'gone', 'disk.hdd');
    writeFileSync(
      conf(),
      text.replace(
        /^DISK="(.*)"$/m,
        `DISK="$1;uuid={00000009-0000-4000-8000-000000000000},enabled=no,image=${gone},mnt=/gone"`,
      ),
    );
    try {
      assert.ok(readFileSync(conf(), 'utf8').includes(gone));
      const outcome = await step('m-umount-gone', 'umountSource');
      assert.deepEqual(actionsOf(outcome), ['already unmounted'], JSON.stringify(outcome.data));
    } finally {
      writeFileSync(conf(), text);
    }
  });
});
