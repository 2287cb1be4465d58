import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { bindMountMaps, blockDevNumber, cgroupMountMaps, secondaryDisks, vzFreeze } from './vz-checkpoint.ts';

const host = mkdtempSync(join(tmpdir(), 'haul-vz-'));
after(() => rmSync(host, { recursive: true, force: true }));

void describe('VZ pieces of a dump', () => {
  void it('maps each cgroup v1 mount by its controllers, as P.Haul, and none with a cgroup namespace', () => {
    mkdirSync(join(host, 'proc', 'self', 'ns'), { recursive: true });
    writeFileSync(
      join(host, 'proc', 'self', 'mountinfo'),
      [
        '22 18 0:19 / /sys/fs/cgroup ro,nosuid shared:6 - tmpfs tmpfs ro,mode=755',
        '23 22 0:20 / /sys/fs/cgroup/systemd rw shared:7 - cgroup cgroup rw,xattr,name=systemd',
        '26 22 0:23 / /sys/fs/cgroup/cpu,cpuacct rw shared:10 - cgroup cgroup rw,cpuacct,cpu',
        '27 22 0:24 / /sys/fs/cgroup/net_cls,net_prio rw shared:11 - cgroup cgroup rw,net_prio,net_cls',
        '28 22 0:25 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory',
        '29 22 0:26 / /sys/fs/cgroup/ve rw shared:13 - cgroup cgroup rw,ve',
        '',
      ].join('\n'),
    );
    assert.deepEqual(cgroupMountMaps(host), [
      '/sys/fs/cgroup/cpu,cpuacct:cpu',
      '/sys/fs/cgroup/net_cls,net_prio:net_cls',
      '/sys/fs/cgroup/net_cls,net_prio:net_cls,net_prio',
      '/sys/fs/cgroup/memory:memory',
      '/sys/fs/cgroup/systemd:systemd',
    ]);
    writeFileSync(join(host, 'proc', 'self', 'ns', 'cgroup'), '');
    assert.deepEqual(cgroupMountMaps(host), []);
  });

  void it('maps bind mounts with a source as <dst>:<src>, and skips those without', () => {
    assert.deepEqual(bindMountMaps({ BINDMOUNT: '/srv/data:/data,nosuid /only-dst  /a:/b' }), [
      '/data:/srv/data',
      '/b:/a',
    ]);
  });

  void it('takes every enabled DISK not mounted at / as secondary, relative to VE_PRIVATE', () => {
    const vars = {
      VE_PRIVATE: '/vz/private/101',
      DISK: 'uuid={r},enabled=yes,image=root.hdd,mnt=/;uuid={a},enabled=yes,image=disk1,mnt=/d1;uuid={b},enabled=no,image=/s/d2,mnt=/d2;uuid={c},image=/s/d3/DiskDescriptor.xml',
    };
    assert.deepEqual(secondaryDisks(vars), [
      { dd: '/vz/private/101/disk1/DiskDescriptor.xml', uuid: '{a}' },
      { dd: '/s/d3/DiskDescriptor.xml', uuid: '{c}' },
    ]);
  });

  void it("reads a partition's device number from sysfs", () => {
    mkdirSync(join(host, 'sys', 'class', 'block', 'ploop7p1'), { recursive: true });
    writeFileSync(join(host, 'sys', 'class', 'block', 'ploop7p1', 'dev'), '182:113\n');
    assert.deepEqual(blockDevNumber(host, '/dev/ploop7p1'), { major: 182, minor: 113 });
  });

  void it("freezes through the CT's freezer cgroup in its slice", () => {
    mkdirSync(join(host, 'etc', 'vz', 'conf'), { recursive: true });
    writeFileSync(join(host, 'etc', 'vz', 'conf', '101.conf'), '');
    assert.equal(
      vzFreeze(host, join(host, 'etc', 'vz'), '101').freezeCgroup,
      `${host}/sys/fs/cgroup/freezer/machine.slice/101/`,
    );
    writeFileSync(join(host, 'etc', 'vz', 'vz.conf'), 'VE_CGROUP_SLICE=vz.slice\n');
    assert.equal(
      vzFreeze(host, join(host, 'etc', 'vz'), '101').freezeCgroup,
      `${host}/sys/fs/cgroup/freezer/vz.slice/101/`,
    );
  });
});
