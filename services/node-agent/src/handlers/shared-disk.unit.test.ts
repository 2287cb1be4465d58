import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { copyGuid, originGuid } from '@haul/domain';
import type { StepCommand } from '@haul/schemas';
import { TOPDELTA } from '../adapters/descriptor.ts';
import { StepError, type HandlerContext } from '../context.ts';
import { snapshotCopy } from './shared-disk.ts';

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
    cfg: { node: 'node-a' },
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
