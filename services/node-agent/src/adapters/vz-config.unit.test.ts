import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readCtDisks, readCtVars } from './vz-config.ts';

const dir = mkdtempSync(join(tmpdir(), 'haul-vzconf-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An `<etc>/vz` of a test's own: its vz.conf, and conf/<CTID>.conf for each CT given. */
function etcVz(name: string, global: string, cts: Record<string, string>): string {
  const etc = join(dir, name);
  mkdirSync(join(etc, 'conf'), { recursive: true });
  writeFileSync(join(etc, 'vz.conf'), global);
  for (const [ctid, body] of Object.entries(cts)) writeFileSync(join(etc, 'conf', `${ctid}.conf`), body);
  return etc;
}

describe('readCtDisks', () => {
  it('joins a relative DISK image= path to VE_PRIVATE, as VZ7 writes it (libvzctl lib/disk.c get_rel_path)', () => {
    const etc = etcVz('etc-vz', `VE_PRIVATE=${dir}/private/$VEID\n`, {
      '101':
        'DISK="uuid={a},enabled=yes,image=disk1.hdd,mnt=/d1;uuid={b},enabled=yes,image=/shared/d2,mnt=/d2;' +
        'uuid={c},image=sub/DiskDescriptor.xml"\n',
    });
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

describe('readCtVars', () => {
  it("takes the CT's config over the global one, with $VEID and ${VEID} expanded; nothing for a CT without one", () => {
    const etc = etcVz(
      'etc-vz-vars',
      'VE_PRIVATE=/vz/private/$VEID\nVE_ROOT=/vz/root/$VEID\nLOCKDIR=/vz/lock\n',
      {
        '101': 'VE_ROOT="/ct/${VEID}/root"\n',
      },
    );
    assert.deepEqual(readCtVars(etc, '101'), {
      VE_PRIVATE: '/vz/private/101',
      VE_ROOT: '/ct/101/root',
      LOCKDIR: '/vz/lock',
    });
    assert.equal(readCtVars(etc, '102'), undefined);
  });
});
