import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  InvalidDescriptor,
  NONE_UUID,
  TOPDELTA,
  readDescriptor,
  storeDescriptor,
  type DiskDescriptor,
} from './descriptor.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-descriptor-'));
const cluster = join(dir, 'cluster');
const node = join(dir, 'node-a');
const dd = join(dir, 'disk', 'DiskDescriptor.xml');
const records = join(cluster, 'parsed-descriptors');
const recordFile = join(records, `${encodeURIComponent(resolve(dd))}.json`);
const disk: DiskDescriptor = {
  rootName: 'Parallels_disk_image',
  diskSize: 131072,
  cylinders: 256,
  heads: 16,
  blocksize: 2048,
  images: [{ guid: TOPDELTA, type: 'Compressed', file: 'root.hds' }],
  top: TOPDELTA,
  shots: [{ guid: TOPDELTA, parent: NONE_UUID, temporary: false }],
};

describe('descriptor reads: what an emulator of the cluster parsed of exactly this text', () => {
  const root = process.env['HAUL_EMU_ROOT'];
  before(() => {
    mkdirSync(join(node, 'etc'), { recursive: true });
    mkdirSync(join(dir, 'disk'));
    writeFileSync(
      join(node, 'etc', 'haul-emu.json'),
      JSON.stringify({ node: 'node-a', clusterDir: cluster }),
    );
    process.env['HAUL_EMU_ROOT'] = node;
  });
  after(() => {
    if (root === undefined) delete process.env['HAUL_EMU_ROOT'];
    else process.env['HAUL_EMU_ROOT'] = root;
    rmSync(dir, { recursive: true, force: true });
  });

  it('given a stored descriptor, when it is read, then the record of its text stands for a parse', () => {
    // Given a descriptor stored by an emulator of the cluster
    storeDescriptor(dd, disk);
    assert.deepEqual(readDescriptor(dd), disk);
    // When its record says something else of the very same text (a record is believed, never checked again)
    const r = JSON.parse(readFileSync(recordFile, 'utf8')) as { xml: string; dd: DiskDescriptor };
    assert.equal(r.xml, readFileSync(dd, 'utf8'));
    writeFileSync(recordFile, JSON.stringify({ ...r, dd: { ...r.dd, diskSize: 1 } }));
    // Then a read returns the record's
    assert.equal(readDescriptor(dd).diskSize, 1);
  });

  it('given a descriptor changed by anything else, when it is read, then it is parsed afresh, errors and all', () => {
    // Given the text changed behind the emulators' back (a test, a real ploop)
    storeDescriptor(dd, disk);
    const xml = readFileSync(dd, 'utf8');
    writeFileSync(dd, xml.replace('<Disk_size>131072</Disk_size>', '<Disk_size>262144</Disk_size>'));
    // Then the read parses the new text
    assert.equal(readDescriptor(dd).diskSize, 262144);
    // And a text that is no descriptor is refused, though the old text had a record
    writeFileSync(dd, xml.replace('<Snapshots>', '<Nothing>'));
    assert.throws(() => readDescriptor(dd), InvalidDescriptor);
  });

  it('given no emulated node (no HAUL_EMU_ROOT), when a descriptor is stored and read, then nothing is recorded', () => {
    rmSync(records, { recursive: true, force: true });
    delete process.env['HAUL_EMU_ROOT'];
    try {
      storeDescriptor(dd, disk);
      assert.deepEqual(readDescriptor(dd), disk);
      assert.equal(existsSync(records), false);
    } finally {
      process.env['HAUL_EMU_ROOT'] = node;
    }
  });
});
