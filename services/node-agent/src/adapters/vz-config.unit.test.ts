import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readCtDisks } from './vz-config.ts';

describe('readCtDisks', () => {
  const dir = mkdtempSync(join(tmpdir(), 'haul-vzconf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('joins a relative DISK image= path to VE_PRIVATE, as VZ7 writes it (libvzctl lib/disk.c get_rel_path)', () => {
    const etc = join(dir, 'etc-vz');
    mkdirSync(join(etc, 'conf'), { recursive: true });
    writeFileSync(join(etc, 'vz.conf'), `VE_PRIVATE=${dir}/private/$VEID\n`);
    writeFileSync(
      join(etc, 'conf', '101.conf'),
      'DISK="uuid={a},enabled=yes,image=disk1.hdd,mnt=/d1;uuid={b},enabled=yes,image=/shared/d2,mnt=/d2;' +
        'uuid={c},image=sub/DiskDescriptor.xml"\n',
    );
    assert.deepEqual(readCtDisks(etc, '101'), {
      vePrivate: `${dir}/private/101`,
      disks: [
        `${dir}/private/101/disk1.hdd/DiskDescriptor.xml`,
        '/shared/d2/DiskDescriptor.xml',
        `${dir}/private/101/sub/DiskDescriptor.xml`,
      ],
    });
  });
});
