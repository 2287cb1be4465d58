import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { locateDisk } from './disk-location.ts';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'haul-disk-location-')));
after(() => rmSync(dir, { recursive: true, force: true }));
const shared = join(dir, 'shared');
const priv = join(dir, 'vz', 'private', '101');
const descriptor = (folder: string, body: string) => {
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'DiskDescriptor.xml'), body);
  return join(folder, 'DiskDescriptor.xml');
};

describe('where a disk of the CT lives on this node', () => {
  it('below a shared root: shared, with the root and the digest of the descriptor', () => {
    const dd = descriptor(join(shared, 'ct101-data0'), '<Parallels_disk_image/>');
    assert.deepEqual(locateDisk(dd, priv, [shared]), {
      ddxml: dd,
      shared: true,
      location: 'shared',
      sharedRoot: shared,
      descriptorSha256: createHash('sha256').update('<Parallels_disk_image/>').digest('hex'),
    });
  });
  it('judged by its real path: a link into shared storage is shared, a link out of it is not', () => {
    const into = join(dir, 'link-into-shared');
    symlinkSync(join(shared, 'ct101-data0'), into);
    assert.equal(locateDisk(join(into, 'DiskDescriptor.xml'), priv, [shared]).location, 'shared');
    const outside = descriptor(join(dir, 'local', 'data1'), 'x');
    symlinkSync(join(dir, 'local', 'data1'), join(shared, 'looks-shared'));
    const d = locateDisk(join(shared, 'looks-shared', 'DiskDescriptor.xml'), priv, [shared]);
    assert.deepEqual(d, {
      ddxml: join(shared, 'looks-shared', 'DiskDescriptor.xml'),
      shared: false,
      location: 'elsewhere',
    });
    assert.equal(locateDisk(outside, priv, [shared]).location, 'elsewhere');
  });
  it('in the private area: private; without any shared root configured a shared folder is elsewhere', () => {
    const root = descriptor(join(priv, 'root.hdd'), 'r');
    assert.deepEqual(locateDisk(root, priv, [shared]), { ddxml: root, shared: false, location: 'private' });
    assert.equal(
      locateDisk(join(shared, 'ct101-data0', 'DiskDescriptor.xml'), priv, []).location,
      'elsewhere',
    );
  });
  it('a shared disk whose descriptor this node cannot read has no digest (the core then finds it not shared)', () => {
    const d = locateDisk(join(shared, 'missing', 'DiskDescriptor.xml'), priv, [shared]);
    assert.equal(d.location, 'shared');
    assert.equal(d.descriptorSha256, undefined);
  });
  it('a shared disk with a DiskDescriptor.xml.copy beside it (a file or a link): the backup is said to be left', () => {
    const dd = descriptor(join(shared, 'ct101-left'), '<Parallels_disk_image/>');
    assert.equal(locateDisk(dd, priv, [shared]).backupLeft, undefined);
    writeFileSync(`${dd}.copy`, '<Parallels_disk_image/>');
    assert.equal(locateDisk(dd, priv, [shared]).backupLeft, true);
    rmSync(`${dd}.copy`);
    symlinkSync(join(dir, 'nowhere'), `${dd}.copy`);
    assert.equal(locateDisk(dd, priv, [shared]).backupLeft, true);
  });
});
