import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { after, describe, it, mock } from 'node:test';
import { copyGuid, errorCodes, originGuid } from '@haul/domain';
import type { StepCommand } from '@haul/schemas';
import { TOPDELTA } from '../adapters/descriptor.ts';
import { liveProcesses } from '@haul/bus';
import { StepError, type HandlerContext } from '../context.ts';
import {
  backupDescriptor,
  cleanupSharedDisk,
  mergeOrigin,
  restoreSharedDisk,
  snapshotCopy,
} from './shared-disk.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-shared-disk-'));
after(() => rmSync(root, { recursive: true, force: true }));

const mid = 'm-0123456789abcdef01234567';
const image = ([guid, file]: [string, string]) =>
  `<Image><GUID>${guid}</GUID><Type>Compressed</Type><File>${file}</File></Image>`;
const descriptor = (images: [string, string][]) =>
  [
    '<?xml version="1.0"?>',
    '<Parallels_disk_image><StorageData><Storage>',
    ...images.map(image),
    `</Storage></StorageData><Snapshots><TopGUID>${TOPDELTA}</TopGUID></Snapshots></Parallels_disk_image>`,
  ].join('\n');

/** A disk whose descriptor was backed up (backupDescriptor succeeded), and a context whose ploop only records. */
function prepared(name: string, originSnapshotted: boolean) {
  const dir = join(root, name);
  const ddxml = join(dir, 'DiskDescriptor.xml');
  mkdirSync(dir, { recursive: true });
  writeFileSync(ddxml, descriptor([[TOPDELTA, 'root.hds']]));
  copyFileSync(ddxml, `${ddxml}.copy`);
  if (originSnapshotted)
    writeFileSync(
      ddxml,
      descriptor([
        [originGuid(mid, 1), 'root.hds'],
        [TOPDELTA, 'root.hds.f1'],
      ]),
    );
  const ploop: string[][] = [];
  const ctx = {
    held: { isHeld: () => true },
    cfg: { node: 'node-a', hostRoot: join(root, `${name}-no-devices`) },
    tools: {
      ploopSnapshot: (dd: string, guid: string) => {
        ploop.push([dd, guid]);
        return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
      },
    },
  } as unknown as HandlerContext;
  const cmd = {
    commandId: `${mid}:snapshotCopy:1:1`,
    migrationId: mid,
    node: 'node-a',
    executor: 'agent',
    attempt: 1,
    step: 'snapshotCopy',
    args: { ddxml, guid: copyGuid(mid, 1) },
    timeoutMs: 120_000,
  } as unknown as StepCommand;
  return { dir, ploop, ctx, cmd };
}

/** A disk as `prepared` makes it, its backup copy then gone, and the command of `step` on it. */
function withoutBackup(name: string, snapshotted: boolean, step: 'backupDescriptor' | 'restoreSharedDisk') {
  const d = prepared(name, snapshotted);
  const ddxml = join(d.dir, 'DiskDescriptor.xml');
  rmSync(`${ddxml}.copy`);
  const args =
    step === 'backupDescriptor'
      ? { ddxml }
      : { ddxml, originGuid: originGuid(mid, 1), copyGuid: copyGuid(mid, 1) };
  return { ...d, ddxml, cmd: { ...d.cmd, step, args } as unknown as StepCommand };
}

describe('snapshotCopy, queued behind the rest of its disk preparation', () => {
  it("refuses before the origin's snapshot exists (its snapshotOrigin failed) and changes nothing", async () => {
    const d = prepared('no-origin', false);
    await assert.rejects(
      snapshotCopy(d.cmd, d.ctx),
      (err: unknown) => err instanceof StepError && err.code === 'HAUL_NO_ORIGIN_SNAPSHOT',
    );
    assert.deepEqual(d.ploop, []);
    assert.equal(existsSync(join(d.dir, 'DiskDescriptor.copy.xml')), false, 'no link left');
  });

  it("snapshots the copy once the origin's snapshot is there", async () => {
    const d = prepared('origin-done', true);
    await snapshotCopy(d.cmd, d.ctx);
    assert.deepEqual(d.ploop, [[join(d.dir, 'DiskDescriptor.copy.xml'), copyGuid(mid, 1)]]);
  });
});

describe('mergeOrigin cut short after ploop stored the descriptor', () => {
  it("removes the origin's delta the merge left: nothing of the migration is left on the shared storage", async () => {
    // Given the target's descriptor without G1 (the merge stored it), and f1 still there (cut before its removal)
    const d = prepared('merge-cut-short', false);
    const ddxml = join(d.dir, 'DiskDescriptor.xml');
    rmSync(`${ddxml}.copy`); // the source's cleanup ran before
    writeFileSync(join(d.dir, 'root.hds'), '');
    const f1 = 'root.hds.{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}';
    writeFileSync(join(d.dir, f1), 'merged into root.hds');
    const merged: string[][] = [];
    const ctx = {
      ...d.ctx,
      tools: {
        ploopSnapshotDelete: (dd: string, guid: string) => {
          merged.push([dd, guid]);
          return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
        },
      },
    } as unknown as HandlerContext;
    const cmd = {
      ...d.cmd,
      commandId: `${mid}:mergeOrigin:1:1`,
      node: 'node-b',
      step: 'mergeOrigin',
      args: { ddxml, originGuid: originGuid(mid, 1), copyGuid: copyGuid(mid, 1) },
    } as unknown as StepCommand;

    // When mergeOrigin runs again
    const r = (await mergeOrigin(cmd, ctx)) as { actions: string[] };

    // Then nothing is merged again, and f1 is gone
    assert.deepEqual(merged, []);
    assert.deepEqual(r.actions, ['origin snapshot already merged', `removed orphan delta ${f1}`]);
    assert.deepEqual(readdirSync(d.dir).sort(), ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds']);
  });
});

/** Run `fn` with fs.fsync replaced by `impl` (the handlers' syncs), then put it back. */
async function withFsync<T>(
  impl: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const m = mock.method(fs, 'fsync', impl);
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    m.mock.restore();
    syncBuiltinESMExports();
  }
}

describe('backupDescriptor: the copy is on disk before the origin is snapshotted', () => {
  /** A disk not backed up yet, and its backupDescriptor command. */
  const unbacked = (name: string) => withoutBackup(name, false, 'backupDescriptor');

  it('syncs the copy before it names it .copy', async () => {
    const d = unbacked('backup-synced');
    const synced: string[] = [];
    await withFsync(
      (fd, cb) => {
        synced.push(fs.readlinkSync(`/proc/self/fd/${fd}`));
        // The copy is synced under its temporary name: nothing is named .copy before its bytes are on disk
        if (synced.length === 1) assert.equal(existsSync(`${d.ddxml}.copy`), false);
        cb(null);
      },
      () => backupDescriptor(d.cmd, d.ctx),
    );
    assert.deepEqual(synced, [`${realpathSync(d.dir)}/DiskDescriptor.xml.copy.tmp`]);
    assert.equal(readFileSync(`${d.ddxml}.copy`, 'utf8'), readFileSync(d.ddxml, 'utf8'));
  });

  it('names no .copy when the sync fails: the origin is not snapshotted over a copy that may not be on disk', async () => {
    const d = unbacked('backup-sync-fails');
    await assert.rejects(
      withFsync(
        (_fd, cb) => cb(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' })),
        () => backupDescriptor(d.cmd, d.ctx),
      ),
      /EIO/,
    );
    assert.equal(existsSync(`${d.ddxml}.copy`), false);
  });
});

describe('restoreSharedDisk over a backup that does not read as a whole descriptor', () => {
  /** A disk backed up and then (`snapshotted`) snapshotted on the origin, whose copy `spoil` then replaced. */
  function spoiled(name: string, snapshotted: boolean, spoil: (copy: string) => void) {
    const d = withoutBackup(name, snapshotted, 'restoreSharedDisk');
    spoil(`${d.ddxml}.copy`);
    return { ...d, before: readFileSync(d.ddxml, 'utf8') };
  }
  const cases: [string, (copy: string) => void][] = [
    ['empty', (copy) => writeFileSync(copy, '')],
    ['torn', (copy) => writeFileSync(copy, descriptor([[TOPDELTA, 'root.hds']]).slice(0, 80))],
    ['naming no image', (copy) => writeFileSync(copy, descriptor([]))],
    [
      'a link (to a whole descriptor)',
      (copy) => {
        writeFileSync(join(root, 'elsewhere.xml'), descriptor([[TOPDELTA, 'root.hds']]));
        symlinkSync(join(root, 'elsewhere.xml'), copy);
      },
    ],
  ];

  for (const [what, spoil] of cases)
    it(`leaves the descriptor and a copy ${what} as they are after the origin's snapshot, and fails (HAUL_DISK_NOT_RESTORED)`, async () => {
      // Given the origin snapshotted after a backup that is not a whole descriptor (its bytes never reached the disk)
      const d = spoiled(`backup-${what.replace(/\W+/g, '-')}`, true, spoil);

      // When the rollback restores the disk
      await assert.rejects(
        restoreSharedDisk(d.cmd, d.ctx),
        (err: unknown) =>
          err instanceof StepError &&
          err.code === errorCodes.diskNotRestored &&
          err.message.includes('does not read as a whole descriptor'),
      );

      // Then the descriptor that names the disk's deltas is still there (before, the copy was renamed over it)
      assert.equal(readFileSync(d.ddxml, 'utf8'), d.before);
      assert.ok(lstatSync(`${d.ddxml}.copy`));
    });

  it('removes such a copy when the origin was never snapshotted: the descriptor is the disk’s own', async () => {
    // Given a backup left empty by a crash before the origin's snapshot (its descriptor never named G1)
    const d = spoiled('backup-empty-no-snapshot', false, (copy) => writeFileSync(copy, ''));

    // When the rollback restores the disk, then it succeeds, the descriptor untouched and the copy gone
    const r = (await restoreSharedDisk(d.cmd, d.ctx)) as { actions: string[] };
    assert.equal(readFileSync(d.ddxml, 'utf8'), d.before);
    assert.equal(existsSync(`${d.ddxml}.copy`), false, r.actions.join('; '));
  });
});

describe('restoreSharedDisk after a backup cut short', () => {
  /** The disk as a backupDescriptor left it when its agent died between the copy and the rename. */
  const cutShort = (name: string) => withoutBackup(name, false, 'restoreSharedDisk');

  it('removes the temporary copy: nothing of the migration is left on the shared storage', async () => {
    // Given the temporary copy written, never renamed
    const d = cutShort('backup-cut-short');
    copyFileSync(d.ddxml, `${d.ddxml}.copy.tmp`);

    // When the rollback restores the disk
    const r = (await restoreSharedDisk(d.cmd, d.ctx)) as { actions: string[] };

    // Then the temporary copy is gone, and the descriptor is the disk's own
    assert.ok(!existsSync(`${d.ddxml}.copy.tmp`), r.actions.join('; '));
    assert.ok(r.actions.includes('removed DiskDescriptor.xml.copy.tmp'), r.actions.join('; '));
    assert.deepEqual(readdirSync(d.dir).sort(), ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck']);
  });

  it("leaves a folder of that name alone: it is not the backup's", async () => {
    // Given a folder where the temporary copy would go (someone else's)
    const d = cutShort('backup-tmp-folder');
    mkdirSync(`${d.ddxml}.copy.tmp`);

    // When the rollback restores the disk, then it succeeds and the folder is still there
    await restoreSharedDisk(d.cmd, d.ctx);
    assert.ok(existsSync(`${d.ddxml}.copy.tmp`));
  });
});

describe('a snapshot of the migration cut short before its rename, settled as ploop would have ended it', () => {
  const g1 = originGuid(mid, 1);
  const g2 = copyGuid(mid, 1);
  const f1 = 'root.hds.{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1}';
  const f2 = 'root.hds.{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f2}';
  /**
   * A disk backed up, with these files; its device /dev/ploop7 on this host opening `opens` (none: no device; 'not
   * shown': a device without pdelta in sysfs, as on ploop 9); a ploop whose snapshot-delete merges G2.
   */
  function disk(name: string, files: string[], opens: string[] | 'not shown' | 'none' = 'none') {
    const d = prepared(name, false);
    const ddxml = join(d.dir, 'DiskDescriptor.xml');
    for (const f of ['root.hds', ...files]) writeFileSync(join(d.dir, f), '');
    const hostRoot = join(root, `${name}-host`);
    if (Array.isArray(opens))
      opens.forEach((f, level) => {
        mkdirSync(join(hostRoot, 'sys', 'block', 'ploop7', 'pdelta', String(level)), { recursive: true });
        writeFileSync(
          join(hostRoot, 'sys', 'block', 'ploop7', 'pdelta', String(level), 'image'),
          join(d.dir, f),
        );
      });
    const merged: string[] = [];
    const ran: string[] = [];
    const ctx = {
      ...d.ctx,
      cfg: { node: 'node-a', hostRoot },
      tools: {
        ploopList: () =>
          Promise.resolve(opens === 'none' ? [] : [{ device: '/dev/ploop7', base: join(d.dir, 'root.hds') }]),
        ploopSnapshot: (dd: string) => {
          ran.push(dd);
          return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
        },
        ploopSnapshotDelete: (dd: string, guid: string) => {
          merged.push(guid);
          writeFileSync(dd, descriptor([[TOPDELTA, 'root.hds']]));
          rmSync(join(d.dir, f2), { force: true });
          return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
        },
      },
    } as unknown as HandlerContext;
    const cmd = {
      ...d.cmd,
      step: 'restoreSharedDisk',
      args: { ddxml, originGuid: g1, copyGuid: g2 },
    } as unknown as StepCommand;
    return { dir: d.dir, ddxml, ctx, cmd, merged, ran };
  }
  /** ploop's store of a snapshot `guid` over a descriptor of root.hds alone: its new top `file`, child of `guid`. */
  const storeOf = (guid: string, file: string) =>
    descriptor([
      [guid, 'root.hds'],
      [TOPDELTA, file],
    ]).replace(
      '</Snapshots>',
      `<Shot><GUID>${TOPDELTA}</GUID><ParentGUID>${guid}</ParentGUID></Shot></Snapshots>`,
    );
  const clean = ['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds'];
  const actionsOf = async (p: Promise<unknown>) => ((await p) as { actions: string[] }).actions;

  it("undoes the origin's (offline): its DiskDescriptor.xml.tmp and the delta it made go", async () => {
    // Given the origin's snapshot G1 killed after it made f1, before its rename
    const d = disk('origin-cut-short', [f1]);
    writeFileSync(`${d.ddxml}.tmp`, storeOf(g1, f1));

    // When the rollback restores the disk
    const actions = await actionsOf(restoreSharedDisk(d.cmd, d.ctx));

    // Then the disk is as before the migration, nothing of the snapshot left
    assert.deepEqual(actions.slice(0, 2), [
      `removed DiskDescriptor.xml.tmp of the snapshot ${g1}, cut short`,
      `removed its delta ${f1}`,
    ]);
    assert.deepEqual(readdirSync(d.dir).sort(), clean);
    assert.deepEqual(d.merged, []);
  });

  it("finishes the copy's when its device writes the delta, then merges it: the CT's writes reach the base", async () => {
    // Given the copy's online snapshot G2 killed after it switched the source's device to f2, before its rename
    const d = disk('copy-switched', [f2], ['root.hds', f2]);
    writeFileSync(`${d.ddxml}.copy.tmp`, storeOf(g2, f2));

    // When the rollback restores the disk
    const actions = await actionsOf(restoreSharedDisk(d.cmd, d.ctx));

    // Then the snapshot is finished, renamed over the descriptor with the copy, and G2 merged
    assert.deepEqual(actions.slice(0, 3), [
      `finished the snapshot ${g2} cut short: its device writes ${f2}`,
      'renamed DiskDescriptor.xml.copy over DiskDescriptor.xml',
      `merged the copy's snapshot ${g2}`,
    ]);
    assert.deepEqual(d.merged, [g2]);
  });

  it("undoes the copy's when its device was never switched to the delta: nothing to merge", async () => {
    const d = disk('copy-not-switched', [f2], ['root.hds']);
    writeFileSync(`${d.ddxml}.copy.tmp`, storeOf(g2, f2));
    const actions = await actionsOf(restoreSharedDisk(d.cmd, d.ctx));
    assert.deepEqual(actions.slice(0, 2), [
      `removed DiskDescriptor.xml.copy.tmp of the snapshot ${g2}, cut short`,
      `removed its delta ${f2}`,
    ]);
    assert.deepEqual(d.merged, []);
    assert.ok(!existsSync(join(d.dir, f2)));
  });

  it("leaves the copy's as it is and fails (HAUL_SNAPSHOT_IN_DOUBT) when the host does not show the device's deltas", async () => {
    const d = disk('copy-not-shown', [f2], 'not shown');
    writeFileSync(`${d.ddxml}.copy.tmp`, storeOf(g2, f2));
    await assert.rejects(
      restoreSharedDisk(d.cmd, d.ctx),
      (e: unknown) => e instanceof StepError && e.code === errorCodes.snapshotInDoubt,
    );
    assert.ok(
      existsSync(`${d.ddxml}.copy.tmp`) && existsSync(join(d.dir, f2)) && existsSync(`${d.ddxml}.copy`),
    );
  });

  it("removes the copy's .tmp when its delta was not made yet, and merges nothing", async () => {
    const d = disk('copy-cut-short-early', []);
    writeFileSync(`${d.ddxml}.copy.tmp`, storeOf(g2, f2));
    const actions = await actionsOf(restoreSharedDisk(d.cmd, d.ctx));
    assert.equal(actions[0], `removed DiskDescriptor.xml.copy.tmp of the snapshot ${g2}, cut short`);
    assert.deepEqual(d.merged, []);
  });

  it('is settled by snapshotCopy run again: finished, then found done without running ploop', async () => {
    // Given the origin snapshotted, and the copy's snapshot cut short after its device switched to f2
    const d = disk('copy-run-again', [f2], ['root.hds', f2]);
    writeFileSync(
      d.ddxml,
      descriptor([
        [g1, 'root.hds'],
        [TOPDELTA, 'root.hds.f1'],
      ]),
    );
    writeFileSync(`${d.ddxml}.copy.tmp`, storeOf(g2, f2));
    const cmd = {
      ...d.cmd,
      step: 'snapshotCopy',
      args: { ddxml: d.ddxml, guid: g2 },
    } as unknown as StepCommand;

    // When the step runs again
    const actions = await actionsOf(snapshotCopy(cmd, d.ctx));

    // Then ploop is not run again on a device already switched
    assert.deepEqual(actions, [
      `finished the snapshot ${g2} cut short: its device writes ${f2}`,
      `snapshot ${g2} already in the copy`,
    ]);
    assert.deepEqual(d.ran, []);
  });
});

describe("restoreSharedDisk while another holds the descriptor's lock", () => {
  it('puts the backup back only once the lock is free: a ploop operation under way is not overwritten', async () => {
    // Given a disk prepared up to the origin's snapshot, and its lock held (an operator's ploop at work)
    const d = prepared('restore-locked', true);
    const ddxml = join(d.dir, 'DiskDescriptor.xml');
    const lck = `${ddxml}.lck`;
    const holder = await holdLock(lck);
    try {
      // When the rollback restores the disk meanwhile
      const cmd = {
        ...d.cmd,
        step: 'restoreSharedDisk',
        args: { ddxml, originGuid: originGuid(mid, 1), copyGuid: copyGuid(mid, 1) },
      } as unknown as StepCommand;
      const restored = restoreSharedDisk(cmd, d.ctx);
      // Then it waits for the lock (its flock is there, waiting) with the backup not yet put back
      await untilWaitingFor(lck);
      assert.ok(existsSync(`${ddxml}.copy`), 'the backup is still where it was');
      assert.ok(readFileSync(ddxml, 'utf8').includes(originGuid(mid, 1)));
      // And once the lock is free, the descriptor is the backup's
      holder.stdin.end();
      await restored;
      assert.ok(!existsSync(`${ddxml}.copy`));
      assert.ok(!readFileSync(ddxml, 'utf8').includes(originGuid(mid, 1)));
    } finally {
      holder.kill();
    }
  });
});

/** Hold a descriptor's lock from another process (as a ploop at work holds it) until its stdin ends. */
async function holdLock(lck: string): Promise<ChildProcessByStdio<Writable, Readable, null>> {
  const holder = spawn('flock', ['--exclusive', lck, 'sh', '-c', 'echo held; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await once(holder.stdout, 'data');
  return holder;
}

/** Until a flock of this process waits for `lck` (another process's wait has no event to await: /proc every 10 ms). */
async function untilWaitingFor(lck: string): Promise<void> {
  while (!waitingFlock(lck)) await new Promise((r) => setTimeout(r, 10));
}

/** Whether a flock of this process waits for `lck` (the agent's descriptor lock, adapters/descriptor-lock.ts). */
function waitingFlock(lck: string): boolean {
  return liveProcesses().some((p) => {
    if (p.ppid !== process.pid) return false;
    try {
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0');
      return argv[0] === 'flock' && argv.includes('--timeout') && argv.some((a) => a.endsWith(lck));
    } catch {
      return false; // ended while looked at
    }
  });
}

describe('the orphan-delta sweep', () => {
  it("deletes nothing while the descriptor's lock is held: a snapshot under way keeps its new delta", async () => {
    // Given a disk on which a ploop snapshot is under way: it holds the descriptor's lock (flock of
    // DiskDescriptor.xml.lck, as ploop does), its new delta exists, the descriptor naming it is not stored yet
    const d = prepared('snapshot-under-way', false);
    const ddxml = join(d.dir, 'DiskDescriptor.xml');
    rmSync(`${ddxml}.copy`);
    const delta = 'root.hds.{0f4c9a7e-1b2d-4c3e-8f5a-6d7e8f9a0b1c}';
    writeFileSync(join(d.dir, delta), 'a new top delta');
    const ploop = await holdLock(`${ddxml}.lck`);

    try {
      // When the cleanup sweeps the disk meanwhile ...
      const cmd = {
        ...d.cmd,
        step: 'cleanupSharedDisk',
        args: { ddxml, originGuid: originGuid(mid, 1), copyGuid: copyGuid(mid, 1) },
      };
      const swept = cleanupSharedDisk(cmd as unknown as StepCommand, d.ctx);
      // ... and the snapshot then stores its descriptor and lets go of the lock
      await untilWaitingFor(`${ddxml}.lck`);
      assert.ok(existsSync(join(d.dir, delta)), 'not swept while the lock is held');
      writeFileSync(
        ddxml,
        descriptor([
          [copyGuid(mid, 9), 'root.hds'],
          [TOPDELTA, delta],
        ]),
      );
      ploop.stdin.end();
      const r = (await swept) as { actions: string[] };
      assert.ok(existsSync(join(d.dir, delta)), `the snapshot's delta survived: ${r.actions.join('; ')}`);
    } finally {
      ploop.kill();
    }
  });
});
