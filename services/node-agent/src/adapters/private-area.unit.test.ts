import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import { actionScripts, ensurePloopLayout, layoutVersion, removeBarePrivateArea } from './private-area.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-private-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
/** A private area holding a copied root disk only, as a target's is before its restore. */
function copiedDiskOnly(): string {
  const priv = join(dir, String(++n));
  mkdirSync(join(priv, 'root.hdd'), { recursive: true });
  writeFileSync(join(priv, 'root.hdd', 'DiskDescriptor.xml'), '<Parallels_disk_image/>\n');
  return priv;
}

describe("a ploop CT's private area on a target", () => {
  it('given copied disks only, when made ready, then it has the layout vzctl create makes, the disk untouched', () => {
    const priv = copiedDiskOnly();

    const actions = ensurePloopLayout(priv);

    assert.equal(readlinkSync(join(priv, '.ve.layout')), '5');
    assert.deepEqual(readdirSync(priv).sort(), ['.ve.layout', 'dump', 'fs', 'root.hdd', 'scripts']);
    assert.deepEqual(readdirSync(join(priv, 'root.hdd')), ['DiskDescriptor.xml']);
    assert.equal(actions.length, 1);
  });

  it('given a private area with its layout already (shared storage, a source), when made ready, then nothing changes', () => {
    const priv = copiedDiskOnly();
    symlinkSync('5', join(priv, '.ve.layout'));

    assert.deepEqual(ensurePloopLayout(priv), []);
    assert.deepEqual(readdirSync(priv).sort(), ['.ve.layout', 'root.hdd']);
  });

  it('given a repeat after a crash that made the folders but not the link, then the link is made', () => {
    const priv = copiedDiskOnly();
    mkdirSync(join(priv, 'fs'));

    ensurePloopLayout(priv);

    assert.equal(readlinkSync(join(priv, '.ve.layout')), '5');
  });

  it('given its disk removed by a rollback, when only the layout is left, then the private area goes', () => {
    const priv = copiedDiskOnly();
    ensurePloopLayout(priv);
    rmSync(join(priv, 'root.hdd'), { recursive: true });

    assert.equal(removeBarePrivateArea(priv), true);
    assert.equal(existsSync(priv), false);
  });

  it('given anything of a CT left in it, then it stays whole', () => {
    const cases: [string, (priv: string) => void][] = [
      ['a config', (p) => writeFileSync(join(p, 've.conf'), 'VEID=101\n')],
      ['a disk', () => undefined],
      ['a file in a layout folder', (p) => writeFileSync(join(p, 'scripts', 'mount'), '#!/bin/sh\n')],
      ['another folder', (p) => mkdirSync(join(p, 'templates'))],
    ];
    for (const [what, leave] of cases) {
      const priv = copiedDiskOnly();
      ensurePloopLayout(priv);
      if (what !== 'a disk') rmSync(join(priv, 'root.hdd'), { recursive: true });
      leave(priv);
      const before = readdirSync(priv).sort();

      assert.equal(removeBarePrivateArea(priv), false, what);
      assert.deepEqual(readdirSync(priv).sort(), before, what);
    }
  });

  it('given nothing of the CT and no link (a crash before the link, a rollback before any restore), then it goes too', () => {
    const halfMade = join(dir, 'half-made');
    mkdirSync(join(halfMade, 'fs'), { recursive: true });
    const emptied = join(dir, 'emptied');
    mkdirSync(emptied);

    assert.equal(removeBarePrivateArea(halfMade), true);
    assert.equal(removeBarePrivateArea(emptied), true);
    assert.equal(removeBarePrivateArea(join(dir, 'missing')), false);
    assert.deepEqual([existsSync(halfMade), existsSync(emptied)], [false, false]);
  });

  it('given a .ve.layout that is a plain file, then the private area stays, and its layout reads as unreadable', () => {
    const priv = join(dir, 'plain-file');
    mkdirSync(priv);
    writeFileSync(join(priv, '.ve.layout'), '5');

    assert.equal(removeBarePrivateArea(priv), false);
    assert.deepEqual(ensurePloopLayout(priv), []);
    assert.equal(layoutVersion(priv), -1);
  });
});

describe("layoutVersion: a private area's layout as libvzctl reads .ve.layout", () => {
  it('is 0 without it, the number its link holds, and -1 for a link that holds none', () => {
    const priv = join(dir, 'layouts');
    mkdirSync(priv);
    const link = join(priv, '.ve.layout');
    const read = (target: string) => {
      rmSync(link, { force: true });
      symlinkSync(target, link);
      return layoutVersion(priv);
    };

    assert.equal(layoutVersion(priv), 0);
    assert.deepEqual(['5', '4', ' 3', '5abc', 'vzfs', '-2'].map(read), [5, 4, 3, 5, -1, -1]);
  });
});

describe("a CT's action scripts", () => {
  it('given scripts of every kind vzctl runs, and files it does not, when read, then the ones it runs are listed with their digests', () => {
    // Given a private area whose scripts folder holds a mount script, a umount script that links to it, a premount
    // that is a folder, a stop script that links to nothing, and a file vzctl never runs
    const priv = copiedDiskOnly();
    const scripts = join(priv, 'scripts');
    mkdirSync(join(scripts, 'premount'), { recursive: true });
    writeFileSync(join(scripts, 'mount'), '#!/bin/sh\nmount --bind /srv /vz/root/$VEID/srv\n');
    symlinkSync('mount', join(scripts, 'umount'));
    symlinkSync('nowhere', join(scripts, 'stop'));
    writeFileSync(join(scripts, 'mount.orig'), 'an old copy\n');
    const sha = createHash('sha256')
      .update('#!/bin/sh\nmount --bind /srv /vz/root/$VEID/srv\n')
      .digest('hex');

    // When its action scripts are read
    const found = actionScripts(priv);

    // Then vzctl's names that stat finds are listed, in its order, a regular file (a link followed) with its digest
    assert.deepEqual(found, [
      { name: 'premount' },
      { name: 'mount', sha256: sha, executable: false },
      { name: 'umount', sha256: sha, executable: false },
    ]);
  });

  it('given an executable script, and a scripts folder that is a file, when read, then the one says so and the other lists every name', () => {
    // Given one private area whose mount script may be executed, and another whose `scripts` is a file: stat fails
    // on every script in it with ENOTDIR, and vzctl would try to run each, and fail
    const priv = copiedDiskOnly();
    mkdirSync(join(priv, 'scripts'));
    writeFileSync(join(priv, 'scripts', 'mount'), '#!/bin/sh\n', { mode: 0o755 });
    const broken = copiedDiskOnly();
    writeFileSync(join(broken, 'scripts'), 'not a folder\n');

    // When their scripts are read
    const mount = actionScripts(priv);
    const names = actionScripts(broken);

    // Then the mount script is executable, and the broken folder lists every name without a digest
    assert.equal(mount[0]?.executable, true);
    assert.deepEqual(
      names,
      ['premount', 'mount', 'start', 'stop', 'umount', 'postumount'].map((name) => ({ name })),
    );
  });

  it('given no scripts folder, or no private area, when read, then there are none', () => {
    const priv = copiedDiskOnly();
    assert.deepEqual(actionScripts(priv), []);
    assert.deepEqual(actionScripts(join(dir, 'none')), []);
  });
});
