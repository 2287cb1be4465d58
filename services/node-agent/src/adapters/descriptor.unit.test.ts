import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  diskOwner,
  parseDescriptorView,
  readDescriptorView,
  TOPDELTA,
  topFile,
  warmDescriptorParser,
} from './descriptor.ts';

const root = mkdtempSync(join(tmpdir(), 'haul-descriptor-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe("a descriptor's view", () => {
  it('given a descriptor on disk, when read, then its images resolve from its folder and the top delta is named', () => {
    const dd = join(root, 'DiskDescriptor.xml');
    const xml = [
      '<?xml version="1.0"?>',
      '<Parallels_disk_image><StorageData><Storage>',
      `<Image><GUID>${TOPDELTA.toUpperCase()}</GUID><Type>Compressed</Type><File>root.hds</File></Image>`,
      `</Storage></StorageData><Snapshots><TopGUID>${TOPDELTA}</TopGUID></Snapshots></Parallels_disk_image>`,
    ].join('\n');
    writeFileSync(dd, xml);
    const view = readDescriptorView(dd);
    assert.deepEqual(view, parseDescriptorView(xml, dd));
    assert.deepEqual(view.images, [{ guid: TOPDELTA, file: join(root, 'root.hds') }]);
    assert.equal(topFile(view), join(root, 'root.hds'));
  });

  it("given the agent's start, when it warms the parser, then the sample parses as a two-image chain", () => {
    const view = warmDescriptorParser();
    assert.deepEqual(
      view.images.map((i) => i.file),
      ['/root.hds', '/root.hds.1'],
    );
    assert.equal(view.top, TOPDELTA);
    assert.deepEqual(
      view.shots.map((s) => s.parent),
      ['{00000000-0000-0000-0000-000000000000}', '{00000000-0000-4000-8000-000000000001}'],
    );
  });
});

describe('which disk a device holds (diskOwner, after an unmount)', () => {
  /** A descriptor whose one image is `file` (as ploop writes <File>), in `folder`. */
  const descriptorIn = (folder: string, file: string): string => {
    mkdirSync(folder, { recursive: true });
    const dd = join(folder, 'DiskDescriptor.xml');
    writeFileSync(
      dd,
      `<Parallels_disk_image><StorageData><Storage><Image><GUID>${TOPDELTA}</GUID><File>${file}</File></Image></Storage></StorageData></Parallels_disk_image>`,
    );
    return dd;
  };
  const fileAt = (path: string): string => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, '');
    return path;
  };

  it('given a descriptor reached through a link that names its image with ../ (as ploop writes one beside its folder), then that image is its disk', () => {
    const real = join(root, 'owner-a', 'shared', 'ct101');
    const dd = descriptorIn(real, '../base/root.hds');
    const base = fileAt(join(root, 'owner-a', 'shared', 'base', 'root.hds'));
    const link = join(root, 'owner-a', 'via-link');
    symlinkSync(real, link);
    // Read lexically from the link, ../base is below owner-a/base, where nothing is: ploop reads from the real folder
    assert.equal(diskOwner([join(link, 'DiskDescriptor.xml')])(base), true);
    assert.equal(diskOwner([dd])(base), true);
  });

  it('given an image named by an absolute path, then it is the disk wherever it lies; a file named by nothing outside the folder is not', () => {
    const dd = descriptorIn(join(root, 'owner-b', 'disk'), join(root, 'owner-b', 'far', 'root.hds'));
    const owned = diskOwner([dd]);
    assert.equal(owned(fileAt(join(root, 'owner-b', 'far', 'root.hds'))), true);
    assert.equal(owned(fileAt(join(root, 'owner-b', 'far', 'other.hds'))), false);
    assert.equal(
      owned(join(root, 'owner-b', 'disk', 'root.hds.{a snapshot}')),
      true,
      'any file of its folder',
    );
  });

  it('given a descriptor that cannot be read or is gone, then its folder alone says which files are its disk', () => {
    const garbled = join(root, 'owner-c', 'garbled', 'DiskDescriptor.xml');
    mkdirSync(dirname(garbled), { recursive: true });
    writeFileSync(garbled, '<Parallels_disk_image><StorageData>');
    const gone = join(root, 'owner-c', 'gone', 'DiskDescriptor.xml');
    const owned = diskOwner([garbled, gone]);
    assert.equal(owned(join(root, 'owner-c', 'garbled', 'root.hds')), true);
    assert.equal(owned(join(root, 'owner-c', 'gone', 'root.hds')), true);
    assert.equal(owned(join(root, 'owner-c', 'root.hds')), false);
    // A descriptor gone from a folder the config reaches through a link: that folder, resolved
    mkdirSync(join(root, 'owner-c', 'emptied'));
    symlinkSync(join(root, 'owner-c', 'emptied'), join(root, 'owner-c', 'emptied-link'));
    const throughLink = diskOwner([join(root, 'owner-c', 'emptied-link', 'DiskDescriptor.xml')]);
    assert.equal(throughLink(join(root, 'owner-c', 'emptied', 'root.hds')), true);
  });
});
