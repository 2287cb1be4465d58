import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
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
