import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { createEventLog, encodeJson, streams, subjects, type DeadLetter } from '@haul/bus';
import { copyGuid, originGuid } from '@haul/domain';
import { createValidators, type MigrationEvent, type StepCommand, type StepName } from '@haul/schemas';

const validators = createValidators();
import {
  agentStateDir,
  awaitEvent,
  migrationRolledBack,
  outcomeOf,
  publishAs,
  startService,
  startWorld,
  stepIntended,
  until,
  type World,
} from '@haul/test';
import { pathFields, type Place } from '../src/confinement.ts';
import { createCommandMarkers } from '../src/markers.ts';

/**
 * Commands published straight to haul.cmd.node-a.agent, as anyone on the bus could: every path field of every agent
 * step gets a `..` path, an absolute path outside the node's roots, and a path through a symlink inside a root
 * that points out. Each is refused (CommandRejected naming the field) and the host tree is byte-for-byte the same.
 */
let w: World;
let outside: string;
const cap = 120_000;
before(async () => {
  // Signatures on, the bus open to any client (secure: false): the commands here come signed by the coordinator's
  // key over the test's own connection, and it is the agent's confinement that must refuse them.
  w = await startWorld({ sharedDisks: 1, secure: false });
  await w.startAgent('node-a', { HAUL_MAX_LEASE_MS: String(cap) });
  outside = join(w.cluster.dir, 'outside');
  mkdirSync(join(outside, 'precious'), { recursive: true });
  writeFileSync(join(outside, 'precious', 'data'), "not haul's to touch");
  writeFileSync(join(outside, 'DiskDescriptor.xml'), '<Parallels_disk_image/>');
});
after(async () => {
  await w?.stop();
});

const imageRoot = () => w.imageRoot('node-a');
const folderOf = (mid: string) => join(imageRoot(), `haul-${mid}`);
const sharedDd = () => join(w.shared[0]!, 'DiskDescriptor.xml');

/** Valid arguments of each agent step with a path, for migration `mid` (what the core would send). */
function legitArgs(step: StepName, mid: string): Record<string, unknown> {
  const folder = folderOf(mid);
  const dump = { ctid: '101', iteration: 1, imageDir: join(folder, '2'), prevImageDir: '../1' };
  const disk = { ddxml: sharedDd(), originGuid: originGuid(mid, 1), copyGuid: copyGuid(mid, 1) };
  switch (step) {
    case 'preflightSource':
    case 'preflightTarget':
      return { ctid: '101', mode: 'live', sharedDisks: [sharedDd()], imageDir: folder };
    case 'preDump':
      return { ...dump, workDir: join(folder, 'work') };
    case 'finalDump':
      return { ...dump, workDir: join(folder, 'work'), leaseMs: 60_000 };
    case 'restore':
      return { ctid: '101', imageDir: join(folder, '2'), workDir: join(folder, 'work') };
    case 'backupDescriptor':
      return { ddxml: sharedDd() };
    case 'snapshotOrigin':
    case 'snapshotCopy':
      return { ddxml: sharedDd(), guid: originGuid(mid, 1) };
    case 'removeFiles':
      return { paths: [folder] };
    default:
      return disk;
  }
}

type Attack = 'dotdot' | 'absolute' | 'symlink';

/** The attacking value of a field of `place`; a symlink attack makes its link first (before the tree is hashed). */
function attack(place: Place, kind: Attack, mid: string): string {
  const folder = folderOf(mid);
  const link = (at: string, to = outside) => {
    mkdirSync(join(at, '..'), { recursive: true });
    if (!existsSync(at)) symlinkSync(to, at);
  };
  switch (place) {
    case 'migrationFolder':
      if (kind === 'symlink') link(folder);
      return { dotdot: `${folder}/../../../../outside`, absolute: outside, symlink: folder }[kind];
    case 'inMigrationFolder':
      if (kind === 'symlink') link(join(folder, 'link'));
      return {
        dotdot: `${folder}/../../../../../outside/x`,
        absolute: join(outside, 'x'),
        symlink: join(folder, 'link', 'x'),
      }[kind];
    case 'previousImages':
      // The schema allows only ../<n>: the first two are refused by it, the third by the check after symlinks.
      if (kind === 'symlink') link(join(folder, '7'));
      return { dotdot: '../../1', absolute: outside, symlink: '../7' }[kind];
    case 'shared':
      if (kind === 'symlink') link(join(w.cluster.shared, 'link'));
      return {
        dotdot: `${w.cluster.shared}/../outside/DiskDescriptor.xml`,
        absolute: join(outside, 'DiskDescriptor.xml'),
        symlink: join(w.cluster.shared, 'link', 'DiskDescriptor.xml'),
      }[kind];
    case 'removable':
      // The reported attack: a link inside the image root to a CT's private area, and a path through it.
      if (kind === 'symlink') link(join(imageRoot(), 'evil'));
      return {
        dotdot: `${folder}/../../outside/precious`,
        absolute: join(outside, 'precious'),
        symlink: join(imageRoot(), 'evil', 'precious'),
      }[kind];
  }
}

type Case = { mid: string; field: string; body: Record<string, unknown> };

function cases(): Case[] {
  const out: Case[] = [];
  for (const [step, fields] of Object.entries(pathFields) as [StepName, Record<string, Place>][])
    for (const [key, place] of Object.entries(fields))
      for (const kind of ['dotdot', 'absolute', 'symlink'] as const) {
        const mid = `m-${step}-${key}-${kind}`;
        const args = legitArgs(step, mid);
        const bad = attack(place, kind, mid);
        const array = Array.isArray(args[key]);
        args[key] = array ? [bad] : bad;
        out.push({ mid, field: array ? `args.${key}.0` : `args.${key}`, body: command(mid, step, args) });
      }
  return out;
}

const command = (mid: string, step: StepName, args: Record<string, unknown>) => ({
  commandId: `${mid}:${step}:1:1`,
  migrationId: mid,
  node: 'node-a',
  executor: 'agent',
  attempt: 1,
  step,
  timeoutMs: 30_000,
  args,
});

let sent = 0;
/**
 * A command as a coordinator gone wrong would send it: signed by the coordinator and, when it is well-formed, intended
 * in its migration's log first (so it passes the command queue's checks and meets the agent's path check). With
 * `intend: false` it is signed but intended nowhere.
 */
async function send(cmd: Record<string, unknown>, o: { intend?: boolean } = {}): Promise<void> {
  const coordinator = w.identities.trust('coordinator');
  const valid = validators.validate<StepCommand>('command', cmd);
  if (o.intend !== false && valid.ok)
    await createEventLog(w.nc, validators, coordinator).append(stepIntended(valid.value));
  await publishAs(
    w.nc,
    coordinator,
    subjects.commands('node-a', 'agent'),
    encodeJson(cmd),
    `confine-${++sent}`,
  );
}

/**
 * Every entry below `dir`: its type, mode, bytes (sha256) or link target; a change anywhere changes the digest. But
 * the agent's own bookkeeping of its commands, its markers and its records of the commands in hand
 * (var/lib/haul/commands, var/lib/haul/in-hand): each is removed just after the command's outcome is appended or it
 * is refused, so a digest taken on seeing that may or may not still find it.
 */
function treeDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (['commands', 'in-hand'].some((b) => p.endsWith(join('var', 'lib', 'haul', b)))) continue;
      const st = lstatSync(p);
      h.update(`${p}\0${st.mode}\0`);
      if (st.isSymbolicLink()) h.update(`-> ${readlinkSync(p)}\0`);
      else if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** Until the agent's last dead letter is a command of `mid` (parked by the command queue, which writes no event). */
const parked = async (mid: string) => {
  const jsm = await jetstreamManager(w.nc);
  await until(async () => {
    const m = await jsm.streams
      .getMessage(streams.deadLetters, { last_by_subj: subjects.deadLetters('node-agent', 'node-a') })
      .catch(() => null);
    return m?.json<DeadLetter>().payload.includes(mid) ?? false;
  }, `${mid} parked`);
};

const rejection = async (mid: string) => {
  const e = await awaitEvent(w.eventLog, mid, (x) => x.type === 'CommandRejected', 30_000);
  assert.ok(e.type === 'CommandRejected');
  return e.data.error;
};

describe("node agent: every path field of every command is confined to the node's roots", () => {
  it('refuses .., outside and symlinked paths in every field, naming it, and touches nothing', async () => {
    const all = cases();
    assert.equal(all.length, 3 * 19, 'three attacks on each of the 19 path fields');
    const before = treeDigest(w.cluster.dir);
    for (const c of all) await send(c.body);
    for (const c of all) {
      const error = await rejection(c.mid);
      assert.equal(error.field, c.field, `${c.mid}: ${error.message}`);
      const bySchema = c.field === 'args.prevImageDir' && !c.mid.endsWith('symlink');
      assert.equal(error.code, bySchema ? 'HAUL_INVALID_MESSAGE' : 'HAUL_PATH_OUTSIDE_ROOTS', c.mid);
      const events: MigrationEvent[] = await w.events(c.mid);
      assert.deepEqual(
        events.map((e) => e.type).filter((t) => t !== 'StepIntended'),
        ['CommandRejected'],
        `${c.mid}: refused, nothing ran`,
      );
    }
    assert.equal(treeDigest(w.cluster.dir), before, 'the host tree is byte-for-byte unchanged');
  });

  it("never removes a folder in the CT's private area that no migration intends to remove", async () => {
    const mid = 'm-remove-private';
    const area = join(w.cluster.nodeRoot('node-a'), 'vz', 'private', '101');
    const before = treeDigest(w.cluster.dir);
    await send(command(mid, 'removeFiles', { paths: [join(area, 'root.hdd')] }), { intend: false });
    // Handled once parked as a dead letter (its migration's log gets no event: intended nowhere).
    await parked(mid);
    assert.deepEqual(await w.events(mid), [], 'parked by the command queue (intended nowhere): no event');
    assert.equal(treeDigest(w.cluster.dir), before);
  });

  it("refuses a final dump whose lease is longer than the node's cap, before anything is frozen", async () => {
    const mid = 'm-lease-too-long';
    const before = treeDigest(w.cluster.dir);
    await send(command(mid, 'finalDump', { ...legitArgs('finalDump', mid), leaseMs: cap + 1 }));
    const error = await rejection(mid);
    assert.deepEqual([error.code, error.field], ['HAUL_LEASE_TOO_LONG', 'args.leaseMs']);
    assert.equal(treeDigest(w.cluster.dir), before);
  });

  it('removes a symlinked image folder as the link, never what it points to', async () => {
    const mid = 'm-remove-link';
    symlinkSync(join(outside, 'precious'), folderOf(mid));
    const cmd = command(mid, 'removeFiles', { paths: [folderOf(mid)] });
    await send(cmd);
    const outcome = await awaitEvent(w.eventLog, mid, outcomeOf(cmd.commandId), 30_000);
    assert.equal(outcome.type, 'StepSucceeded');
    assert.equal(lstatExists(folderOf(mid)), false, 'the link is gone');
    assert.equal(readFileSync(join(outside, 'precious', 'data'), 'utf8'), "not haul's to touch");
  });

  it('still runs a command with legitimate paths (a preflight creates its image folder)', async () => {
    const mid = 'm-legit-preflight';
    const cmd = command(mid, 'preflightTarget', legitArgs('preflightTarget', mid));
    await send(cmd);
    const outcome = await awaitEvent(w.eventLog, mid, outcomeOf(cmd.commandId), 30_000);
    assert.equal(outcome.type, 'StepSucceeded', JSON.stringify(outcome.data));
    assert.ok(existsSync(join(folderOf(mid), 'work')));
  });
});

describe('node agent: a command refused for good on a redelivery', () => {
  // The marker an earlier delivery began (the agent died in its step): nothing runs the command again, so nothing
  // else would end it, and every restart would find the command in doubt again.
  const markers = () => createCommandMarkers(join(agentStateDir(w.cluster.nodeRoot('node-a')), 'commands'));

  it('given its path refused by the agent (its roots changed since), then its marker is ended', async () => {
    const mid = 'm-marker-confined';
    const cmd = command(mid, 'removeFiles', { paths: [join(outside, 'precious')] });
    markers().begin(cmd.commandId);
    await send(cmd);
    assert.equal((await rejection(mid)).code, 'HAUL_PATH_OUTSIDE_ROOTS');
    await until(() => !existsSync(markers().pathOf(cmd.commandId)), `${cmd.commandId}'s marker ended`);
  });

  it('given its migration ended without running it (the command queue refuses it), then its marker is ended', async () => {
    const mid = 'm-marker-ended';
    const cmd = command(mid, 'removeFiles', { paths: [folderOf(mid)] });
    const coordinatorLog = createEventLog(w.nc, validators, w.identities.trust('coordinator'));
    const valid = validators.validate<StepCommand>('command', cmd);
    assert.ok(valid.ok);
    await coordinatorLog.append(stepIntended(valid.value));
    await coordinatorLog.append(migrationRolledBack(mid, `${cmd.commandId} timed out`));
    markers().begin(cmd.commandId);
    await send(cmd, { intend: false });
    await parked(mid);
    await until(() => !existsSync(markers().pathOf(cmd.commandId)), `${cmd.commandId}'s marker ended`);
  });
});

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

describe('node agent: its roots are checked at start', () => {
  for (const [what, env, message] of [
    [
      'a relative shared root',
      { HAUL_SHARED_ROOTS: 'shared' },
      /sharedRoots\.0 \(HAUL_SHARED_ROOTS="shared"\) must match pattern "\^\/"/,
    ],
    [
      'a missing shared root',
      { HAUL_SHARED_ROOTS: '/nonexistent-haul' },
      /HAUL_SHARED_ROOTS.*does not exist/,
    ],
    ['/ as a shared root', { HAUL_SHARED_ROOTS: '/' }, /HAUL_SHARED_ROOTS.*whole file system/],
    ['a lease cap out of range', { HAUL_MAX_LEASE_MS: '10' }, /HAUL_MAX_LEASE_MS="10"\) must be >= 1000/],
  ] as const)
    it(`exits 2 on ${what}, saying which setting`, async () => {
      const agent = startService('agent-bad-roots', 'services/node-agent/src/main.ts', {
        ...w.cluster.envFor('node-a'),
        HAUL_NODE: 'node-a',
        HAUL_NATS_URL: w.server.url,
        HAUL_HOST_ROOT: w.cluster.nodeRoot('node-a'),
        HAUL_IMAGE_ROOT: imageRoot(),
        HAUL_STATE_DIR: join(w.cluster.dir, 'bad-agent-state'),
        ...env,
      });
      assert.equal(await agent.drained, 2);
      assert.ok(
        agent.lines.some((l) => message.test(l)),
        agent.lines.join('\n'),
      );
    });
});
