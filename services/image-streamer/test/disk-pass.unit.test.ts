import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorCodes } from '@haul/domain';
import { DiskTrackingError, planPass, trackHelper, trackOutput, withExtents } from '../src/disk-pass.ts';
import { buildManifest } from '../src/manifest.ts';

const MiB = 1 << 20;
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'haul-disk-pass-')));
/** The CT's private area where it really is, and the folder the CT's config names: through a link (/vz → /data/vz). */
const real = join(dir, 'data', 'vz', 'private', '101', 'root.hdd');
const linked = join(dir, 'vz', 'private', '101', 'root.hdd');
const helpers = join(dir, 'bin');
let path: string | undefined;

/** A stand-in tracking helper, first on PATH, that names the delta `file` and hands out one written MiB. */
function helperNaming(file: string): void {
  writeFileSync(
    join(helpers, trackHelper),
    `#!/bin/sh\necho '${JSON.stringify({ file, started: true, extents: [[0, MiB]] })}'\n`,
    { mode: 0o755 },
  );
}

const args = {
  toNode: 'node-b',
  sourceDir: linked,
  targetDir: '/vz/private/101/root.hdd',
  priority: 'iteration' as const,
};

before(() => {
  mkdirSync(real, { recursive: true });
  writeFileSync(join(real, 'DiskDescriptor.xml'), '<Parallels_disk_image/>');
  writeFileSync(join(real, 'root.hds'), Buffer.alloc(4 * MiB));
  symlinkSync(join(dir, 'data', 'vz'), join(dir, 'vz'));
  mkdirSync(helpers);
  path = process.env['PATH'];
  process.env['PATH'] = `${helpers}:${path ?? ''}`;
});
after(() => {
  process.env['PATH'] = path;
  rmSync(dir, { recursive: true, force: true });
});

describe('a later pass of a live disk copy, the disk folder reached through a link', () => {
  it("sends the extents the tracker took of the delta it names by the delta's real path", async () => {
    // Given a tracker that names the delta as its device does, where it really is (not through the link)
    helperNaming(join(real, 'root.hds'));

    // When a later pass is planned for the folder the CT's config names
    const plan = await planPass({ ...args, pass: { index: 1, final: false } });

    // Then the delta is the folder's root.hds, and the pass sends the MiB written
    assert.equal(plan.kind, 'update');
    if (plan.kind !== 'update') return;
    assert.equal(plan.top, 'root.hds');
    const manifest = withExtents(buildManifest(linked), plan);
    assert.deepEqual(manifest.find((e) => e.path === 'root.hds')?.extents, [[0, MiB]]);
  });

  it('fails, HAUL_DISK_TRACKING, when the tracker names a delta outside the folder', async () => {
    // Given a tracker whose delta is a file of another folder
    const elsewhere = join(dir, 'other.hds');
    writeFileSync(elsewhere, '');
    helperNaming(elsewhere);

    // When a later pass is planned, then it fails rather than send none of the delta's writes
    await assert.rejects(
      planPass({ ...args, pass: { index: 1, final: true } }),
      (err: unknown) =>
        err instanceof DiskTrackingError &&
        err.info.code === errorCodes.diskTracking &&
        err.message.includes('not in'),
    );
  });

  it('fails, HAUL_DISK_TRACKING, when the tracked delta is not a file the pass would send', async () => {
    helperNaming(join(real, 'root.hds'));
    const plan = await planPass({ ...args, pass: { index: 1, final: false } });
    assert.equal(plan.kind, 'update');
    if (plan.kind !== 'update') return;
    const manifest = buildManifest(linked).filter((e) => e.path !== 'root.hds');
    assert.throws(
      () => withExtents(manifest, plan),
      (err: unknown) => err instanceof DiskTrackingError && err.info.code === errorCodes.diskTracking,
    );
  });
});

describe('what the tracking helper prints, when it is not what it should be', () => {
  /** A stand-in helper that prints `text` and exits 0. */
  const helperPrinting = (text: string) =>
    writeFileSync(join(helpers, trackHelper), `#!/bin/sh\nprintf '%s' '${text}'\n`, { mode: 0o755 });

  for (const [what, text] of [
    ['a warning line', 'warning: the device is slow'],
    ['nothing', ''],
    ['JSON with no file', '{"started":true}'],
    ['an extent that is no byte range', '{"file":"/x","extents":[[4096,-1]]}'],
  ] as const)
    it(`fails the pass, HAUL_DISK_TRACKING, on ${what} (it ended the streamer's process before)`, async () => {
      helperPrinting(text);
      await assert.rejects(
        planPass({ ...args, pass: { index: 1, final: false } }),
        (err: unknown) => err instanceof DiskTrackingError && err.info.code === errorCodes.diskTracking,
      );
    });
});

describe("what the tracking helper prints, as each of its calls prints it (the emulator's haul-ploop-track)", () => {
  it('start and take name the delta; ack names the device alone, which is no failure', () => {
    assert.deepEqual(trackOutput('{"device":"/dev/ploop0","file":"/d/root.hds","started":true}\n', true), {
      device: '/dev/ploop0',
      file: '/d/root.hds',
      started: true,
    });
    assert.deepEqual(trackOutput('{"device":"/dev/ploop0"}\n', false), { device: '/dev/ploop0' });
    assert.throws(() => trackOutput('{"device":"/dev/ploop0"}\n', true), /no delta file name/);
  });
});
