import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MigrateRequest, MigrationEvent, PreflightResult } from '@haul/schemas';
import { given } from '../test/decider-spec.ts';
import { meta, simulate } from '../test/simulate.ts';
import { checkDisks, declaredDisk, migrationDisks } from './disks.ts';
import { fold } from './evolve.ts';
import { initialState } from './state.ts';

const m = meta(Date.parse('2026-01-01T01:00:00.000Z'));
const advance = { kind: 'Advance', meta: m } as const;
const happy = simulate({
  mode: 'live',
  sharedDisks: 1,
  localDisks: 1,
  pagesPerIteration: [10],
  memTrack: true,
  preDump: 'auto',
  fault: { kind: 'none' },
  picks: [],
}).events;

/** The same log, as if the request had declared `sharedDisks` (or nothing, when undefined). */
function declaring(log: MigrationEvent[], sharedDisks: string[] | undefined): MigrationEvent[] {
  return log.map((e) => {
    if (e.type !== 'MigrationRequested') return e;
    const request: MigrateRequest = { ...e.data.request };
    if (sharedDisks === undefined) delete request.sharedDisks;
    else request.sharedDisks = sharedDisks;
    return { ...e, data: { ...e.data, request } };
  });
}
const upTo = (log: MigrationEvent[], step: string) =>
  log.slice(0, log.findIndex((e) => e.type === 'StepSucceeded' && e.data.step === step) + 1);
/** Both preflights succeeded, nothing else yet. */
const preflighted = (log: MigrationEvent[]) => {
  const src = upTo(log, 'preflightSource');
  const tgt = upTo(log, 'preflightTarget');
  return src.length > tgt.length ? src : tgt;
};

const shared = (ddxml: string, sha = 'a'.repeat(64)): PreflightResult['disks'][number] => ({
  ddxml,
  shared: true,
  location: 'shared',
  sharedRoot: '/shared',
  descriptorSha256: sha,
});
const local = (ddxml: string): PreflightResult['disks'][number] => ({
  ddxml,
  shared: false,
  location: 'private',
});
const result = (disks: PreflightResult['disks']): PreflightResult => ({
  configPresent: true,
  running: true,
  criuVersion: '3.17',
  memTrack: true,
  cpuFlags: [],
  imageDir: '/img',
  disks,
  freeBytes: 1,
});
const req: MigrateRequest = { requestId: 'r', ctid: '101', source: 'node-a', target: 'node-b' };
const root = '/vz/private/101/root.hdd/DiskDescriptor.xml';
const data = '/shared/ct101-data0/DiskDescriptor.xml';

describe('given a request without sharedDisks for a CT with a shared disk', () => {
  const log = declaring(happy, undefined);
  it('the disk both nodes found on shared storage takes the snapshot dance; the local one is copied', () => {
    const frozen = upTo(log, 'finalDump');
    const out = given(frozen)
      .when(advance)
      .then([
        { type: 'StepIntended', data: { step: 'backupDescriptor' } },
        { type: 'StepIntended', data: { step: 'snapshotOrigin' } },
        { type: 'StepIntended', data: { step: 'snapshotCopy' } },
        { type: 'StepIntended', data: { step: 'streamImages' } },
        { type: 'StepIntended', data: { step: 'copyLocalDisk' } },
      ]);
    assert.deepEqual(
      out.map((e) => (e.data as { args: { ddxml?: string } }).args.ddxml ?? null),
      [
        '/shared/disk0/DiskDescriptor.xml',
        '/shared/disk0/DiskDescriptor.xml',
        '/shared/disk0/DiskDescriptor.xml',
        null,
        null,
      ],
    );
  });
  it('the preflight commands carry no shared disks: the agents find them', () => {
    const intents = log.flatMap((e) =>
      e.type === 'StepIntended' && e.data.step.startsWith('preflight') ? [e.data.args] : [],
    );
    assert.equal(intents.length, 2);
    for (const a of intents) assert.equal('sharedDisks' in a, false);
  });
});

describe('given a request whose sharedDisks are wrong', () => {
  it('a local disk claimed shared: the preflight fails naming the field and the disk, before any freeze', () => {
    const log = preflighted(declaring(happy, ['/src/private/101/disk0']));
    const [e] = given(log)
      .when(advance)
      .then([
        {
          type: 'RollbackStarted',
          data: { cause: { code: 'HAUL_PREFLIGHT_SHARED_DISK', field: 'sharedDisks.0' } },
        },
      ]);
    assert.match(JSON.stringify(e), /\/src\/private\/101\/disk0\/DiskDescriptor.xml of CT 101 is not shared/);
  });
  it('a path that is no disk of the CT: the preflight fails naming it', () => {
    const log = preflighted(declaring(happy, ['/shared/disk0/DiskDescriptor.xml', '/shared/other']));
    const [e] = given(log)
      .when(advance)
      .then([{ type: 'RollbackStarted', data: { cause: { field: 'sharedDisks.1' } } }]);
    assert.match(JSON.stringify(e), /\/shared\/other is not a disk of CT 101/);
  });
  it('a shared disk left out of a given list: the preflight fails naming it', () => {
    const log = preflighted(declaring(happy, []));
    const [e] = given(log)
      .when(advance)
      .then([
        {
          type: 'RollbackStarted',
          data: { cause: { code: 'HAUL_PREFLIGHT_SHARED_DISK', field: 'sharedDisks' } },
        },
      ]);
    assert.match(JSON.stringify(e), /\/shared\/disk0\/DiskDescriptor.xml .* sharedDisks does not name it/);
  });
});

describe('checkDisks and migrationDisks: what both nodes found', () => {
  it('a disk is shared only when the target sees the same descriptor below its own shared roots', () => {
    const src = result([local(root), shared(data)]);
    assert.equal(checkDisks(req, src, result([shared(data)])), undefined);
    const cases: [PreflightResult, RegExp][] = [
      [result([]), /target's config of the CT does not name it/],
      [
        result([{ ...shared(data), location: 'elsewhere', shared: false }]),
        /none of the target's shared-storage roots/,
      ],
      [result([shared(data, 'b'.repeat(64))]), /reads another descriptor/],
      [
        result([{ ddxml: data, shared: true, location: 'shared', sharedRoot: '/shared' }]),
        /target cannot read/,
      ],
    ];
    for (const [tgt, why] of cases) {
      const e = checkDisks(req, src, tgt);
      assert.equal(e?.code, 'HAUL_PREFLIGHT_SHARED_DISK');
      assert.match(e?.message ?? '', why);
      assert.match(
        e?.message ?? '',
        /ct101-data0\/DiskDescriptor.xml of CT 101 is on shared storage of node-a/,
      );
    }
  });
  it('a disk outside both the private area and the shared roots cannot be migrated: named before any freeze', () => {
    const src = result([local(root), { ddxml: data, shared: false, location: 'elsewhere' }]);
    const e = checkDisks(req, src, result([]));
    assert.match(
      e?.message ?? '',
      /ct101-data0.* lives neither in its private area nor below a shared-storage root/,
    );
  });
  it('a declared path names a disk as P.Haul reads it: the descriptor, its folder, or a delta in that folder', () => {
    const disks = [local(root), shared(data)];
    for (const p of [data, '/shared/ct101-data0', '/shared/ct101-data0/', '/shared/ct101-data0/root.hds'])
      assert.equal(declaredDisk(p, disks)?.ddxml, data, p);
    assert.equal(declaredDisk('/shared/ct101-data0/Other.xml', disks), undefined);
    assert.equal(declaredDisk('/shared', disks), undefined);
  });
  it('the core takes the shared disks from the preflight results, not from the request', () => {
    const log = preflighted(declaring(happy, undefined));
    const s = fold(log, initialState());
    const { shared: sh, local: lo } = migrationDisks(s);
    assert.deepEqual(
      sh.map((d) => d.ddxml),
      ['/shared/disk0/DiskDescriptor.xml'],
    );
    assert.deepEqual(
      lo.map((d) => d.ddxml),
      ['/src/private/101/disk0/DiskDescriptor.xml'],
    );
  });
  it('a log from before agents located disks keeps the request word (shared as declared)', () => {
    const legacy = (d: PreflightResult['disks'][number]) => ({ ddxml: d.ddxml, shared: d.shared });
    const src = result([legacy(local(root)), legacy(shared(data))]);
    assert.equal(checkDisks({ ...req, sharedDisks: [data] }, src, result([])), undefined);
    assert.match(checkDisks(req, src, result([]))?.message ?? '', /only 1 of the 0/);
  });
});
