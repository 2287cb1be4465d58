import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MigrateRequest, MigrationEvent } from '@haul/schemas';
import { followToEnd } from '@haul/cli';
import { checkSeal, natsAtLeast, startRunningWorld, type World } from '@haul/test';

async function migrate(
  w: World,
  from: string,
  to: string,
  extra: Record<string, unknown> = {},
  watch: (e: MigrationEvent) => void = () => {},
) {
  const base = await w.baseline(from);
  const req: MigrateRequest = {
    requestId: `req-${from}-${to}-${Date.now()}`,
    ctid: w.ctid,
    source: from,
    target: to,
    sharedDisks: w.shared,
    ...(extra as Partial<MigrateRequest>),
  };
  // `sharedDisks: undefined` asks without the list: the agents find the shared disks.
  if (req.sharedDisks === undefined) delete req.sharedDisks;
  const r = await w.api.migrate(req);
  assert.ok(r.ok, JSON.stringify(r));
  if (!r.ok) throw new Error('rejected');
  const end = await followToEnd(w.eventLog, r.migrationId, watch);
  return { id: r.migrationId, end, base };
}

describe('live migration with one shared disk, there and back', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16, dirtyRate: 800 });
  });
  after(() => w?.stop());

  it('moves the CT to node-b with pre-dump iterations, losing nothing; a concurrent vzctl is refused by its lock', async () => {
    // An operator's vzctl stop once the migration holds the CT's lock: refused as vzctl refuses a locked CT.
    let stop: Promise<{ code: number; stderr: string }> | undefined;
    const { id, end, base } = await migrate(w, 'node-a', 'node-b', {}, (e) => {
      if (!stop && e.type === 'StepSucceeded' && e.data.step === 'lockSource')
        stop = w.cluster.run('node-a', 'vzctl', ['stop', w.ctid]);
    });
    const refused = await stop;
    assert.equal(refused?.code, 9, refused?.stderr);
    assert.match(
      refused?.stderr ?? '',
      /Locked info: pid=\d+ cmdline=sh \S+haul-hold-ct-lock .*\nCannot lock the Container/,
    );
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    // The invariants include the handover: registered and owned on node-b only, the HA resource there, no lock left.
    assert.deepEqual(await w.brokenInvariants(id, base), []);
    const events = await w.events(id);
    assert.ok(
      events.filter((e) => e.type === 'StepSucceeded' && e.data.step === 'preDump').length >= 1,
      'pre-dumps ran',
    );
    assert.ok(end.data.stats.downtimeMs! > 0 && end.data.stats.restoreMs! > 0);
    // The disk preparation went out in one decision, and the downtime is accounted for step by step: the tools the
    // agents ran (criu, ploop, vzctl) report their time, the rest is control overhead.
    const intents = events.flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
    const at = intents.indexOf('backupDescriptor');
    assert.deepEqual(intents.slice(at, at + 3), ['backupDescriptor', 'snapshotOrigin', 'snapshotCopy']);
    const window = end.data.stats.downtimeWindow!;
    assert.equal(window.windowMs, end.data.stats.downtimeMs);
    assert.equal(window.criticalPath.steps.at(0), 'finalDump:-');
    assert.equal(window.criticalPath.steps.at(-1), 'restore:-');
    for (const key of ['finalDump:-', 'snapshotOrigin:1', 'snapshotCopy:1', 'restore:-']) {
      const row = window.steps.find((r) => r.key === key);
      assert.ok(row && row.hostMs > 0 && row.hostMs <= row.spanMs, `${key}: ${JSON.stringify(row)}`);
    }
    // The coordinator sealed the log: its seal covers every message before it, so a reader of the whole log believes
    // this migration on the seal's one signature, and believes the same events as a read that checks each one.
    const sealed = await checkSeal(w.nc, w.eventLog, w.readerTrust, id);
    assert.deepEqual(
      sealed.read.slice(-2).map((e) => e.event.type),
      ['MigrationCompleted', 'MigrationSealed'],
    );
    assert.equal(sealed.seal.upToSeq, sealed.read.at(-2)!.seq, 'the seal follows the terminal event');
    assert.deepEqual(sealed.seal, sealed.all);
    assert.equal(sealed.replayChecks, 1, 'one signature checked: the seal');
    assert.deepEqual(sealed.replayed, sealed.read);
    // It carries the migration's status, as its events fold to: a replay for statuses takes the seal alone.
    assert.equal(sealed.snapshot?.phase, 'completed');
    assert.deepEqual(sealed.snapshot, sealed.folded);
    assert.deepEqual(sealed.replayedWithSnapshots, [[{ ...sealed.read.at(-1)!, snapshot: true }]]);
    // It names the signers of what it vouches for, so a reader of statuses takes it without reading the log.
    // (the scheduler's request, the coordinator's decisions, both agents' outcomes at least; `all` above holds them)
    assert.ok((sealed.seal.signers?.length ?? 0) >= 4, JSON.stringify(sealed.seal.signers));
    assert.deepEqual(sealed.replayedFromSeals, [[{ ...sealed.read.at(-1)!, snapshot: true }]]);
  });

  it('a request for a CT that is already migrating is rejected; the same request id twice yields one migration', async () => {
    const req = {
      requestId: 'same-request',
      ctid: w.ctid,
      source: 'node-b',
      target: 'node-a',
      sharedDisks: w.shared,
    };
    const base = await w.baseline('node-b');
    const [a, b] = await Promise.all([w.api.migrate(req), w.api.migrate(req)]);
    assert.ok(a.ok && b.ok);
    if (!a.ok || !b.ok) return;
    assert.equal(a.migrationId, b.migrationId);
    assert.equal([a.duplicate, b.duplicate].filter(Boolean).length, 1);
    const busy = await w.api.migrate({ ...req, requestId: 'other-request' });
    assert.equal(busy.ok, false);
    if (!busy.ok) {
      assert.equal(busy.error.code, 'HAUL_CT_BUSY');
      assert.equal(busy.error.field, 'ctid');
    }
    const end = await followToEnd(w.eventLog, a.migrationId, () => {});
    assert.equal(end.type, 'MigrationCompleted', `and back to node-a: ${JSON.stringify(end.data)}`);
    assert.deepEqual(await w.brokenInvariants(a.migrationId, base), []);
  });

  it('rejects a malformed request naming the field, and unknown nodes', async () => {
    const bad = await w.api.migrate({
      requestId: 'x',
      ctid: 'not a ctid',
      source: 'node-a',
      target: 'node-b',
    });
    assert.ok(!bad.ok && bad.error.field === 'ctid' && bad.error.code === 'HAUL_INVALID_MESSAGE');
    const unknown = await w.api.migrate({ requestId: 'y', ctid: w.ctid, source: 'node-a', target: 'node-z' });
    assert.ok(!unknown.ok && unknown.error.code === 'HAUL_NODE_UNKNOWN' && unknown.error.field === 'target');
  });
});

describe('live migration with no shared disk', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 0, memoryMb: 16 });
  });
  after(() => w?.stop());
  it('copies the local disk and restores memory intact', async () => {
    const { id, end, base } = await migrate(w, 'node-a', 'node-b');
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(id, base), []);
  });
});

describe('live migration from a host whose kernel does not track dirty memory', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16, memTrack: false });
  });
  after(() => w?.stop());
  it('dumps once, without pre-dumps and without --track-mem (which criu refuses there), and completes', async () => {
    const steps: string[] = [];
    const { id, end, base } = await migrate(w, 'node-a', 'node-b', {}, (e) => {
      if (e.type === 'StepIntended') steps.push(e.data.step);
    });
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.ok(!steps.includes('preDump') && steps.includes('finalDump'), steps.join(' '));
    assert.deepEqual(await w.brokenInvariants(id, base), []);
  });
});

for (const [release, debian, atLeast] of [
  ['newer', 'trixie', [2, 10]],
  ['current', 'sid', [2, 12]],
] as const)
  describe(`live migration with one shared disk on the ${release} nats-server (Debian ${debian}’s)`, () => {
    let w: World;
    before(async () => {
      w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16, natsRelease: release, secure: true });
    });
    after(() => w?.stop());
    it(`completes, losing nothing, on a ${atLeast.join('.')} server or later: identities, permissions, TLS, the log and every consumer as on 2.9`, async () => {
      assert.ok(natsAtLeast(w.nc.info?.version, atLeast[0], atLeast[1]), `nats-server ${w.nc.info?.version}`);
      const { id, end, base } = await migrate(w, 'node-a', 'node-b');
      assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    });
  });

describe('two shared disks: live there, restart mode back', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 2, memoryMb: 16 });
  });
  after(() => w?.stop());
  it('live-migrates with two shared disks', async () => {
    const { id, end, base } = await migrate(w, 'node-a', 'node-b');
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(id, base), []);
  });
  it('restart mode: stop on the source, copy local disks, start on the target', async () => {
    const { id, end, base } = await migrate(w, 'node-b', 'node-a', { mode: 'restart' });
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(id, base), []);
    const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
    assert.deepEqual(steps.slice(0, 6), [
      'preflightTarget',
      'preflightSource',
      'lockSource',
      'stopSource',
      'copyLocalDisk',
      'startTarget',
    ]);
    assert.match(await w.cluster.ok('node-a', 'vzctl', ['status', w.ctid]), /running/);
    assert.doesNotMatch(await w.cluster.ok('node-b', 'vzctl', ['status', w.ctid]), /running/);
  });
});

describe('shared disks found, not declared', () => {
  let w: World;
  before(async () => {
    w = await startRunningWorld({ sharedDisks: 1, memoryMb: 16 });
  });
  after(() => w?.stop());

  async function refusedInPreflight(sharedDisks: string[], named: string) {
    const { id, end, base } = await migrate(w, 'node-a', 'node-b', { sharedDisks });
    assert.equal(end.type, 'MigrationRolledBack');
    if (end.type !== 'MigrationRolledBack') return;
    assert.equal(end.data.cause?.code, 'HAUL_PREFLIGHT_SHARED_DISK');
    assert.equal(end.data.cause?.field, 'sharedDisks.0');
    assert.ok(end.data.cause?.message.includes(named), end.data.cause?.message);
    const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
    assert.ok(!steps.includes('finalDump') && !steps.includes('preDump'), `never frozen: ${steps.join(' ')}`);
    assert.deepEqual(await w.brokenInvariants(id, base), []);
  }

  it('a local disk claimed shared fails the preflight, naming the disk, and the CT is never frozen', async () => {
    const root = join(w.cluster.nodeRoot('node-a'), 'vz', 'private', w.ctid, 'root.hdd');
    await refusedInPreflight([root], join(root, 'DiskDescriptor.xml'));
  });

  it('a path that is no disk of the CT fails the preflight, naming it, and the CT is never frozen', async () => {
    const other = join(w.cluster.shared, 'not-a-disk-of-the-ct');
    await refusedInPreflight([other], other);
  });

  it('a shared disk the target does not share (its agent has no shared roots) fails the preflight, naming it', async () => {
    await w.services.get('agent-node-b')!.kill('SIGTERM');
    await w.startAgent('node-b', { HAUL_SHARED_ROOTS: '' });
    try {
      const { id, end, base } = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });
      assert.equal(end.type, 'MigrationRolledBack');
      const cause = end.type === 'MigrationRolledBack' ? end.data.cause : undefined;
      assert.equal(cause?.code, 'HAUL_PREFLIGHT_SHARED_DISK');
      assert.match(cause?.message ?? '', /below none of the target's shared-storage roots/);
      assert.ok(cause?.message.includes(join(w.shared[0]!, 'DiskDescriptor.xml')), cause?.message);
      const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
      assert.ok(!steps.includes('finalDump'), `never frozen: ${steps.join(' ')}`);
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    } finally {
      await w.services.get('agent-node-b')!.kill('SIGTERM');
      await w.startAgent('node-b');
    }
  });

  it('a CT whose private area is no ploop CT’s (no .ve.layout) fails the preflight, naming it, and is never frozen', async () => {
    // Given the CT's private area without its layout link: vzctl would take it for a simfs CT's
    const priv = join(w.cluster.nodeRoot('node-a'), 'vz', 'private', w.ctid);
    const link = join(priv, '.ve.layout');
    rmSync(link);
    try {
      // When it is migrated
      const { id, end, base } = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });

      // Then the preflight refuses it, naming the private area and its layout, before anything is frozen
      assert.equal(end.type, 'MigrationRolledBack');
      const cause = end.type === 'MigrationRolledBack' ? end.data.cause : undefined;
      assert.deepEqual([cause?.code, cause?.field], ['HAUL_PREFLIGHT_NOT_PLOOP', 'ctid']);
      assert.ok(cause?.message.includes(`${priv} has layout 0`), cause?.message);
      const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
      assert.ok(
        !steps.includes('finalDump') && !steps.includes('preDump'),
        `never frozen: ${steps.join(' ')}`,
      );
      symlinkSync('5', link);
      assert.deepEqual(await w.brokenInvariants(id, base), []);
    } finally {
      rmSync(link, { force: true });
      symlinkSync('5', link);
    }
  });

  it('a CT with an action script the target has not fails the preflight, naming it; with the same script on both it goes there and back, the scripts kept', async () => {
    // Given a mount script in the CT's private area on node-a, none on node-b
    const scriptOn = (node: string) =>
      join(w.cluster.nodeRoot(node), 'vz', 'private', w.ctid, 'scripts', 'mount');
    // (it logs where it ran: vzctl runs it on the host at every mount, the restore's too)
    const ran = join(w.cluster.dir, 'mount-script.log');
    const script = `#!/bin/sh\necho "$VEID $VE_CONFFILE" >> ${ran}\n`;
    writeFileSync(scriptOn('node-a'), script, { mode: 0o755 });
    try {
      // When it is migrated
      const refused = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });

      // Then the preflight refuses it, naming the script and both folders, before anything is frozen
      assert.equal(refused.end.type, 'MigrationRolledBack');
      const cause = refused.end.type === 'MigrationRolledBack' ? refused.end.data.cause : undefined;
      assert.deepEqual([cause?.code, cause?.field], ['HAUL_PREFLIGHT_ACTION_SCRIPTS', 'ctid']);
      assert.ok(cause?.message.includes(`action script(s) mount of CT ${w.ctid}`), cause?.message);
      assert.ok(cause?.message.includes(dirname(dirname(scriptOn('node-b')))), cause?.message);
      const steps = (await w.events(refused.id)).flatMap((e) =>
        e.type === 'StepIntended' ? [e.data.step] : [],
      );
      assert.ok(
        !steps.includes('preDump') && !steps.includes('finalDump'),
        `never frozen: ${steps.join(' ')}`,
      );
      assert.deepEqual(await w.brokenInvariants(refused.id, refused.base), []);

      // When an operator puts the same script on node-b (no private area there yet: the agent makes the rest of it
      // around the script), and the CT is migrated there and back
      mkdirSync(dirname(scriptOn('node-b')), { recursive: true });
      writeFileSync(scriptOn('node-b'), script, { mode: 0o755 });
      const there = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });
      assert.equal(there.end.type, 'MigrationCompleted', JSON.stringify(there.end.data));
      assert.deepEqual(await w.brokenInvariants(there.id, there.base), []);
      const back = await migrate(w, 'node-b', 'node-a', { sharedDisks: undefined });
      assert.equal(back.end.type, 'MigrationCompleted', JSON.stringify(back.end.data));
      assert.deepEqual(await w.brokenInvariants(back.id, back.base), []);

      // Then each restore ran the script of its node, and both scripts are as they were
      const confOf = (node: string) => join(w.cluster.nodeRoot(node), 'etc', 'vz', 'conf', `${w.ctid}.conf`);
      assert.deepEqual(readFileSync(ran, 'utf8').trim().split('\n'), [
        `${w.ctid} ${confOf('node-b')}`,
        `${w.ctid} ${confOf('node-a')}`,
      ]);
      for (const node of ['node-a', 'node-b']) assert.equal(readFileSync(scriptOn(node), 'utf8'), script);
    } finally {
      rmSync(scriptOn('node-a'), { force: true });
      rmSync(scriptOn('node-b'), { force: true });
    }
  });

  it('a DiskDescriptor.xml.copy an earlier migration left fails the preflight, naming the disk, and stays untouched', async () => {
    // Given a backup of the shared disk's descriptor left beside it (a rollback stopped half-way, resolved by hand)
    const dd = join(w.shared[0]!, 'DiskDescriptor.xml');
    const left = `${dd}.copy`;
    const before = readFileSync(dd, 'utf8').replace('<Disk_Parameters>', '<Disk_Parameters><!-- older -->');
    writeFileSync(left, before);
    try {
      // When a live migration of the CT is asked for
      const { id, end } = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });

      // Then its preflight refuses the disk before the CT is frozen, and the file is as it was
      assert.equal(end.type, 'MigrationRolledBack');
      const cause = end.type === 'MigrationRolledBack' ? end.data.cause : undefined;
      assert.equal(cause?.code, 'HAUL_PREFLIGHT_BACKUP_LEFT');
      assert.equal(cause?.field, 'sharedDisks');
      assert.ok(cause?.message.includes(dd), cause?.message);
      const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
      assert.ok(
        !steps.includes('backupDescriptor') && !steps.includes('preDump'),
        `never frozen: ${steps.join(' ')}`,
      );
      assert.equal(readFileSync(left, 'utf8'), before);
      assert.match(await w.cluster.ok('node-a', 'vzctl', ['status', w.ctid]), /running/);
    } finally {
      rmSync(left, { force: true });
    }
  });

  it("files an earlier migration left where the root disk's copy goes fail a restart-mode preflight, naming the folder, and stay untouched", async () => {
    // Given the target's folder of the CT's root disk holding an older copy of it, its descriptor and a delta of the
    // source's size (a rollback's removal of the target's copy resolved by hand)
    const folder = join(w.cluster.nodeRoot('node-b'), 'vz', 'private', w.ctid, 'root.hdd');
    const source = join(w.cluster.nodeRoot('node-a'), 'vz', 'private', w.ctid, 'root.hdd');
    mkdirSync(folder, { recursive: true });
    copyFileSync(join(source, 'DiskDescriptor.xml'), join(folder, 'DiskDescriptor.xml'));
    const stale = Buffer.alloc(statSync(join(source, 'root.hds')).size, 7);
    writeFileSync(join(folder, 'root.hds'), stale);
    try {
      // When a restart-mode migration of the CT is asked for
      const { id, end } = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined, mode: 'restart' });

      // Then its preflight refuses it before the CT is stopped (its copy would take that file for its own), and the
      // file is as it was
      assert.equal(end.type, 'MigrationRolledBack');
      const cause = end.type === 'MigrationRolledBack' ? end.data.cause : undefined;
      assert.deepEqual([cause?.code, cause?.field], ['HAUL_PREFLIGHT_LOCAL_DISK_LEFT', 'target']);
      assert.ok(cause?.message.includes(`${folder} on node-b`), cause?.message);
      const steps = (await w.events(id)).flatMap((e) => (e.type === 'StepIntended' ? [e.data.step] : []));
      assert.ok(
        !steps.includes('stopSource') && !steps.includes('copyLocalDisk'),
        `not stopped: ${steps.join(' ')}`,
      );
      assert.ok(readFileSync(join(folder, 'root.hds')).equals(stale));
      assert.match(await w.cluster.ok('node-a', 'vzctl', ['status', w.ctid]), /running/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('without sharedDisks the agents find the shared disk: the migration completes with the snapshot dance', async () => {
    const { id, end, base } = await migrate(w, 'node-a', 'node-b', { sharedDisks: undefined });
    assert.equal(end.type, 'MigrationCompleted', JSON.stringify(end.data));
    assert.deepEqual(await w.brokenInvariants(id, base), []);
    const events = await w.events(id);
    const intents = events.flatMap((e) => (e.type === 'StepIntended' ? [`${e.data.step}`] : []));
    for (const step of [
      'backupDescriptor',
      'snapshotOrigin',
      'snapshotCopy',
      'cleanupSharedDisk',
      'mergeOrigin',
    ])
      assert.ok(intents.includes(step), `${step} ran: ${intents.join(' ')}`);
    // The evidence is in both preflights' results: the same descriptor below each node's shared root.
    const found = events.flatMap((e) =>
      e.type === 'StepSucceeded' && (e.data.step === 'preflightSource' || e.data.step === 'preflightTarget')
        ? [e.data.result.disks.filter((d) => d.location === 'shared')]
        : [],
    );
    assert.equal(found.length, 2);
    const [a, b] = found.map((disks) => disks.map((d) => `${d.ddxml} ${d.descriptorSha256}`));
    assert.deepEqual(a, b);
    assert.equal(a?.length, 1);
    assert.ok(a?.[0]?.startsWith(join(w.shared[0]!, 'DiskDescriptor.xml')));
  });
});
