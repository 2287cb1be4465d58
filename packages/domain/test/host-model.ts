/**
 * A pure model of two hosts and their shared storage, precise enough to check the safety invariants: which node
 * runs the CT, each shared descriptor's chain (original and .copy), the delta files, locks, image folders and local
 * disk copies. The simulated agent below applies every step the way the real tools do (host-tools.md §1–§5).
 */
import type {
  DumpResult,
  HostResult,
  MigrationEvent,
  PreflightResult,
  StepCommand,
  StreamResult,
} from '@haul/schemas';
import { originGuid } from '../src/ids.ts';
import { errorCodes } from '../src/errors.ts';

const TOP = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
export type Image = { guid: string; file: string };
export type Chain = Image[];
export type Ct = 'running' | 'frozen' | 'stopped';

export type HostModel = {
  ct: { source: Ct; target: Ct };
  /** Shared disks: descriptor chain, its .copy (if any), the files that exist next to it. */
  shared: { dd: Chain; copy?: Chain; files: Set<string>; sourceDevice?: Chain; targetDevice?: Chain }[];
  /** Local disks: present on the source, maybe copied to the target. */
  local: { source: boolean; target: boolean }[];
  images: { source: boolean; target: boolean };
  /** The target's boot count, and the boot each image folder was streamed in (a reboot may lose unsynced files). */
  targetBoot: number;
  imageBoots: number[];
  /** Violations seen while applying steps (e.g. a base written while another node has it open). */
  violations: string[];
  /** The source's CT lock (LOCKDIR/<ctid>.lck) held by the migration. */
  locked: boolean;
  /** Where the CT is registered and owned (its `.owner`), and where its HA resource points. */
  registered: { source: boolean; target: boolean };
  ha: 'source' | 'target';
};

export function newHost(sharedDisks: number, localDisks: number): HostModel {
  return {
    ct: { source: 'running', target: 'stopped' },
    shared: Array.from({ length: sharedDisks }, () => ({
      dd: [{ guid: TOP, file: 'root.hds' }],
      files: new Set(['DiskDescriptor.xml', 'root.hds']),
      sourceDevice: [{ guid: TOP, file: 'root.hds' }],
    })),
    local: Array.from({ length: localDisks }, () => ({ source: true, target: false })),
    images: { source: false, target: false },
    targetBoot: 0,
    imageBoots: [],
    violations: [],
    locked: false,
    registered: { source: true, target: false },
    ha: 'source',
  };
}

/** ploop snapshot: relabel the top to G, add `root.hds.{G}` file as the new top (the delta name uses a fresh GUID). */
function snapshot(chain: Chain, guid: string, deltaFile: string): Chain {
  return [...chain.map((i) => (i.guid === TOP ? { ...i, guid } : i)), { guid: TOP, file: deltaFile }];
}
/** ploop snapshot-delete of G with one child: merge the child into G's file, which takes the child's GUID. */
function deleteSnapshot(chain: Chain, guid: string): { chain: Chain; removed?: string } {
  const idx = chain.findIndex((i) => i.guid === guid);
  if (idx < 0) return { chain };
  const child = chain[idx + 1];
  if (!child) return { chain: chain.filter((_, j) => j !== idx), removed: chain[idx]!.file };
  const merged = chain
    .filter((_, j) => j !== idx + 1)
    .map((i, j) => (j === idx ? { ...i, guid: child.guid } : i));
  return { chain: merged, removed: child.file };
}

export type Outcome =
  { kind: 'ok'; result: unknown } | { kind: 'fail'; partial: boolean } | { kind: 'crash'; partial: boolean };

export type Scenario = {
  sharedDisks: number;
  localDisks: number;
  pagesPerIteration: number[];
  memTrack: boolean;
  /** The CT's resident memory as the source's preflight inspects it (absent: not reported, as in the golden logs). */
  memoryBytes?: number;
  /** What each live pass of a local disk moves, pass by pass (absent: 4 KiB each, converged at once). */
  diskPassBytes?: number[];
};

const f1 = (g: string) => `root.hds.${g}.f1`;
const f2 = (g: string) => `root.hds.${g}.f2`;

/** Apply a command to the host model, returning its result (success) — the "real" effect of every step. */
export function apply(h: HostModel, cmd: StepCommand, sc: Scenario, partialOnly = false): unknown {
  const a = cmd.args as unknown as Record<string, unknown>;
  const disk = Number(cmd.commandId.split(':').at(-2)!.split('.')[0]);
  const sd = h.shared[disk - h.local.length];
  const host = (actions: string[]): HostResult => ({ actions });
  switch (cmd.step) {
    case 'preflightSource':
    case 'preflightTarget': {
      const src = cmd.step === 'preflightSource';
      if (src) h.images.source = true;
      else h.images.target = true;
      const r: PreflightResult = {
        configPresent: true,
        running: src ? h.ct.source === 'running' : h.ct.target === 'running',
        criuVersion: '3.17',
        memTrack: sc.memTrack,
        cpuFlags: ['sse2'],
        imageDir: (cmd.args as { imageDir: string }).imageDir,
        ...(src ? {} : { bootId: `boot-${h.targetBoot}` }),
        vePrivate: src ? '/src/private/101' : '/tgt/private/101',
        // As the agents find them: local disks in the source's private area (not there yet on the target), shared
        // ones below /shared on both, read alike.
        disks: [
          ...(src ? h.local : []).map((_, i) => ({
            ddxml: `/src/private/101/disk${i}/DiskDescriptor.xml`,
            shared: false,
            location: 'private' as const,
          })),
          ...h.shared.map((_, i) => ({
            ddxml: `/shared/disk${i}/DiskDescriptor.xml`,
            shared: true,
            location: 'shared' as const,
            sharedRoot: '/shared',
            descriptorSha256: String(i).padStart(64, 'a'),
          })),
        ],
        freeBytes: 1e12,
        ...(src && sc.memoryBytes !== undefined ? { memoryBytes: sc.memoryBytes } : {}),
      };
      return r;
    }
    case 'preDump':
    case 'finalDump': {
      const i = a['iteration'] as number;
      if (cmd.step === 'finalDump') h.ct.source = 'frozen';
      const pages = sc.pagesPerIteration[i] ?? 10;
      const r: DumpResult = {
        pagesWritten: pages,
        pagesSkipped: 0,
        frozenUs: 1000,
        memdumpUs: 500,
        bytes: pages * 4096,
        durationMs: 50,
      };
      return r;
    }
    case 'streamImages':
    case 'copyLocalDisk': {
      if (cmd.step === 'copyLocalDisk') h.local[disk]!.target = true;
      else h.imageBoots.push(h.targetBoot);
      const pass = cmd.step === 'copyLocalDisk' ? cmd.commandId.split(':').at(-2)!.split('.')[1] : undefined;
      const bytes = pass === undefined ? 4096 : (sc.diskPassBytes?.[Number(pass)] ?? 4096);
      const r: StreamResult = { bytes, files: 1, durationMs: 10, mbPerSec: 0.4 };
      return r;
    }
    case 'backupDescriptor':
      sd!.copy = [...sd!.dd];
      sd!.files.add('DiskDescriptor.xml.copy');
      return host(['copied']);
    case 'snapshotOrigin': {
      const g = a['guid'] as string;
      sd!.files.add(f1(g));
      if (partialOnly) return undefined; // the delta file exists, the descriptor was not rewritten
      sd!.dd = snapshot(sd!.dd, g, f1(g));
      return host(['snapshot']);
    }
    case 'snapshotCopy': {
      const g = a['guid'] as string;
      sd!.files.add(f2(g));
      sd!.files.add('DiskDescriptor.xml.copy.lck');
      if (partialOnly) return undefined;
      sd!.copy = snapshot(sd!.copy!, g, f2(g));
      sd!.sourceDevice = snapshot(sd!.sourceDevice!, g, f2(g));
      return host(['snapshot']);
    }
    case 'restore':
      if (h.imageBoots.some((b) => b !== h.targetBoot))
        h.violations.push('restored from images streamed before the target rebooted');
      h.ct.target = 'running';
      for (const s of h.shared) {
        s.targetDevice = [...s.dd];
        if (s.sourceDevice && s.sourceDevice.at(-1)!.file === s.dd.at(-1)!.file)
          h.violations.push('same top delta open on both nodes');
        if (s.sourceDevice && s.dd.length === 1)
          h.violations.push('target writes the base the source has open');
      }
      return { actions: ['restored'], restoreUs: 2000 } satisfies HostResult;
    case 'startTarget':
      if (h.ct.source !== 'stopped') h.violations.push('started on the target while running on the source');
      h.ct.target = 'running';
      for (const s of h.shared) s.targetDevice = [...s.dd];
      return host(['started']);
    case 'releaseSource':
      h.ct.source = 'stopped';
      return host(['released']);
    case 'stopSource':
      h.ct.source = 'stopped';
      for (const s of h.shared) delete s.sourceDevice;
      return host(['stopped']);
    case 'resumeSource':
      if (h.ct.target === 'running') h.violations.push('resumed on the source while running on the target');
      if (h.ct.source === 'frozen') h.ct.source = 'running';
      return host(['resumed']);
    case 'startSource':
      if (h.ct.target === 'running') h.violations.push('started on the source while running on the target');
      h.ct.source = 'running';
      for (const s of h.shared) s.sourceDevice = [...s.dd];
      return host(['started']);
    case 'stopTarget':
      h.ct.target = 'stopped';
      for (const s of h.shared) delete s.targetDevice;
      return host(['stopped']);
    case 'restoreSharedDisk': {
      const acts: string[] = [];
      if (sd!.copy) {
        sd!.dd = sd!.copy;
        delete sd!.copy;
        sd!.files.delete('DiskDescriptor.xml.copy');
        acts.push('renamed copy back');
      }
      const g2 = a['copyGuid'] as string;
      if (sd!.dd.some((i) => i.guid === g2)) {
        const { chain, removed } = deleteSnapshot(sd!.dd, g2);
        sd!.dd = chain;
        if (removed) sd!.files.delete(removed);
        if (sd!.sourceDevice) sd!.sourceDevice = deleteSnapshot(sd!.sourceDevice, g2).chain;
        acts.push('merged copy snapshot');
      }
      sd!.files.delete(f1(a['originGuid'] as string));
      sd!.files.delete(f2(g2)); // an f2 left by a half-done snapshotCopy
      sd!.files.delete('DiskDescriptor.xml.copy.lck');
      return host(acts);
    }
    case 'umountSource':
      for (const s of h.shared) delete s.sourceDevice;
      return host(['unmounted']);
    case 'cleanupSharedDisk':
      sd!.files.delete('DiskDescriptor.xml.copy');
      sd!.files.delete('DiskDescriptor.xml.copy.lck');
      sd!.files.delete(f2(a['copyGuid'] as string));
      delete sd!.copy;
      return host(['removed']);
    case 'mergeOrigin': {
      if (sd!.sourceDevice) h.violations.push('merged into the base while the source still has it open');
      const { chain, removed } = deleteSnapshot(sd!.dd, a['originGuid'] as string);
      sd!.dd = chain;
      if (removed) sd!.files.delete(removed);
      if (sd!.targetDevice) sd!.targetDevice = [...chain];
      return host(['merged']);
    }
    case 'lockSource':
      h.locked = true;
      return host(['locked']);
    case 'unlockSource':
      h.locked = false;
      return host(['unlocked']);
    case 'takeOwnership':
      if (h.ct.target !== 'running') h.violations.push('ownership taken by a target the CT does not run on');
      h.ha = 'target';
      h.registered.target = true;
      return host(['owned']);
    case 'releaseOwnership':
      if (h.ct.source !== 'stopped') h.violations.push('unregistered on the source while it runs there');
      if (!h.registered.target)
        h.violations.push('unregistered on the source before the target registered it');
      h.registered.source = false;
      return host(['unregistered']);
    case 'removeFiles': {
      for (const p of a['paths'] as string[]) {
        if (p === '/src/img/haul-mig-sim01') h.images.source = false;
        else if (p === '/tgt/img/haul-mig-sim01') h.images.target = false;
        else {
          const m = /^\/(src|tgt)\/private\/101\/disk(\d+)$/.exec(p);
          if (m) h.local[Number(m[2])]![m[1] === 'src' ? 'source' : 'target'] = false;
          else h.violations.push(`asked to remove an unknown path ${p}`);
        }
      }
      return host(['removed']);
    }
  }
}

/**
 * What the agent refuses after inspecting the host, before it changes anything (services/node-agent's shared-disk
 * handlers): a disk preparation once the CT is no longer held frozen, an origin snapshot without the backup copy, a
 * copy snapshot without the backup copy or before the origin's snapshot. The refusal's error code, if any.
 */
export function refusal(h: HostModel, cmd: StepCommand): string | undefined {
  if (cmd.step !== 'backupDescriptor' && cmd.step !== 'snapshotOrigin' && cmd.step !== 'snapshotCopy')
    return undefined;
  if (h.ct.source !== 'frozen') return errorCodes.notHeld;
  const disk = Number(cmd.commandId.split(':').at(-2)!.split('.')[0]);
  const sd = h.shared[disk - h.local.length]!;
  const guid = (cmd.args as unknown as { guid: string }).guid;
  const has = (chain: Chain | undefined, g: string) => chain?.some((i) => i.guid === g) ?? false;
  if (cmd.step === 'snapshotOrigin' && !has(sd.dd, guid) && !sd.copy) return errorCodes.noBackup;
  if (cmd.step === 'snapshotCopy') {
    if (!sd.copy) return errorCodes.noBackup;
    if (!has(sd.copy, guid) && !has(sd.dd, originGuid(cmd.migrationId, disk)))
      return errorCodes.noOriginSnapshot;
  }
  return undefined;
}

/** The invariants a finished migration must satisfy. Returns the broken ones. */
export function brokenInvariants(h: HostModel, terminal: MigrationEvent['type'] | undefined): string[] {
  const out = [...h.violations];
  const running = (['source', 'target'] as const).filter((n) => h.ct[n] === 'running');
  if (running.length !== 1) out.push(`CT runs on ${running.length} nodes (${JSON.stringify(h.ct)})`);
  if (terminal === 'MigrationCompleted' && h.ct.target !== 'running')
    out.push('completed but not running on the target');
  if (terminal === 'MigrationRolledBack' && h.ct.source !== 'running')
    out.push('rolled back but not running on the source');
  h.shared.forEach((s, i) => {
    if (s.dd.length !== 1 || s.dd[0]!.guid !== TOP || s.dd[0]!.file !== 'root.hds')
      out.push(`disk ${i}: chain ${JSON.stringify(s.dd)}`);
    const extra = [...s.files].filter((f) => f !== 'DiskDescriptor.xml' && f !== 'root.hds');
    if (extra.length) out.push(`disk ${i}: files left ${extra.join(', ')}`);
    if (s.copy) out.push(`disk ${i}: copy left`);
  });
  if (h.images.source || h.images.target) out.push(`image folders left ${JSON.stringify(h.images)}`);
  if (h.locked) out.push('the CT lock is still held');
  const home = running.length === 1 ? running[0]! : undefined;
  if (home && (!h.registered[home] || h.registered[home === 'source' ? 'target' : 'source']))
    out.push(`registered ${JSON.stringify(h.registered)}, runs on the ${home}`);
  if (home && h.ha !== home) out.push(`HA resource on the ${h.ha}, CT runs on the ${home}`);
  h.local.forEach((l, i) => {
    if (terminal === 'MigrationCompleted' && (l.source || !l.target))
      out.push(`local disk ${i} ${JSON.stringify(l)} after success`);
    if (terminal === 'MigrationRolledBack' && (!l.source || l.target))
      out.push(`local disk ${i} ${JSON.stringify(l)} after rollback`);
  });
  return out;
}
