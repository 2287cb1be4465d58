import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationEvent } from '@haul/schemas';
import type { EmulatedCluster } from './emulated-cluster.ts';
import { lastBesidesSeal } from './seals.ts';
import { withRequestDefaults } from '@haul/domain';
import {
  corruptionLog,
  ctStatus,
  deviceDisagreement,
  diskView,
  haResource,
  memoryChecksum,
  pauseWorkload,
} from '@haul/host-emulators';

/**
 * Where one emulated CT lives: the cluster, every node it may run on, its shared disks' folders, and its local disks
 * besides the root disk (folders relative to VE_PRIVATE, in the order of the CT's DISK=; default none).
 */
export type CtPlace = {
  cluster: EmulatedCluster;
  nodes: readonly string[];
  ctid: string;
  shared: string[];
  privateDisks?: string[];
};

export type Baseline = { views: Record<string, string>[]; journals: Record<string, number>; pid: number };

/** The folder a node's agent keeps migration images in (HAUL_IMAGE_ROOT of an emulated node). */
export const imageRootOf = (cluster: EmulatedCluster, node: string): string =>
  join(cluster.nodeRoot(node), 'var', 'local', 'haul');

/** The base image of every emulated ploop disk: a shared disk's chain must come back to exactly this one. */
const baseImageUuid = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';

const rootDd = (p: CtPlace, n: string) =>
  join(p.cluster.nodeRoot(n), 'vz', 'private', p.ctid, 'root.hdd', 'DiskDescriptor.xml');
// In the order the emulated CT numbers its disks (its write journal's first field): the root disk, then DISK= order.
const disksOn = (p: CtPlace, n: string) => [
  rootDd(p, n),
  ...(p.privateDisks ?? []).map((d) =>
    join(p.cluster.nodeRoot(n), 'vz', 'private', p.ctid, d, 'DiskDescriptor.xml'),
  ),
  ...p.shared.map((d) => join(d, 'DiskDescriptor.xml')),
];
/** Emulator-only proof seams are read in this process, on the node named (each tool call was a Node start). */
const on = (p: CtPlace, node: string) => p.cluster.emuEnv(node);
const view = (p: CtPlace, node: string, dd: string) => diskView(dd, on(p, node));
const pause = (p: CtPlace, node: string, op: 'freeze' | 'thaw') => pauseWorkload(on(p, node), p.ctid, op);
const journalOf = (p: CtPlace, n: string) => {
  const f = join(p.cluster.nodeRoot(n), 'var', 'log', `ct-${p.ctid}.writes`);
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').filter(Boolean) : [];
};
/** What the source's last final dump recorded at the freeze: the memory checksum, the write journal's length. */
const lastFreeze = (p: CtPlace, source: string) => {
  const dumps = readFileSync(join(p.cluster.nodeRoot(source), 'var', 'log', `ct-${p.ctid}.dumps`), 'utf8')
    .trim()
    .split('\n');
  return JSON.parse(dumps.at(-1)!) as { memSha256: string; journalLines?: number };
};
const initPid = (p: CtPlace, n: string) =>
  Number(readFileSync(join(p.cluster.nodeRoot(n), 'var', 'run', 've', `${p.ctid}.init.pid`), 'utf8'));

/**
 * What the CT looks like before a migration from `source`: its disks' content, how far each node's write journal
 * goes, and the CT's pid. Taken while the CT is paused, so nothing is written in between.
 */
export async function takeBaseline(p: CtPlace, source: string): Promise<Baseline> {
  await pause(p, source, 'freeze');
  try {
    const views = disksOn(p, source).map((dd) => view(p, source, dd));
    const journals = Object.fromEntries(p.nodes.map((n) => [n, journalOf(p, n).length]));
    return { views, journals, pid: initPid(p, source) };
  } finally {
    await pause(p, source, 'thaw');
  }
}

/**
 * Every data-safety invariant of a finished migration, from its events and the hosts; returns what is broken
 * (empty = all hold): the CT runs exactly once, where the outcome says, not frozen; its memory survived (live
 * mode); its disks hold the initial content plus every block it wrote; nothing is left behind anywhere; it is
 * registered and owned there only, its HA resource runs there, and its lock is free.
 */
export async function brokenInvariants(
  p: CtPlace,
  migrationId: string,
  events: MigrationEvent[],
  base: Baseline,
): Promise<string[]> {
  const req = events.find((e) => e.type === 'MigrationRequested');
  if (req?.type !== 'MigrationRequested') return ['no MigrationRequested event'];
  const { source, target } = req.data.request;
  const terminals = events.filter((e) => e.type === 'MigrationCompleted' || e.type === 'MigrationRolledBack');
  const broken: string[] = [];
  if (terminals.length !== 1) broken.push(`${terminals.length} terminal events`);
  const completed = terminals[0]?.type === 'MigrationCompleted';
  const home = completed ? target : source;
  const running = runningOn(p);
  if (running.length !== 1)
    broken.push(`CT ${p.ctid} runs on ${running.length} nodes (${running.join(', ')})`);
  if (running.length === 1 && running[0] !== home) broken.push(`CT runs on ${running[0]}, expected ${home}`);
  const live = withRequestDefaults(req.data.request).mode === 'live';
  if (running.includes(home))
    broken.push(...(await brokenMemory(p, { source, target, completed, live }, base)));
  broken.push(...(await brokenDisks(p, { source, target, completed, live, home, running }, base)));
  broken.push(...brokenLeftovers(p, migrationId, home));
  broken.push(...brokenOwnership(p, home));
  const corruption = corruptionLog(p.cluster.clusterDir);
  if (corruption.trim()) broken.push(`double read-write attach recorded: ${corruption.trim()}`);
  const last = lastBesidesSeal(events);
  if (last?.type !== 'MigrationCompleted' && last?.type !== 'MigrationRolledBack')
    broken.push(`the log does not end with the terminal event (last: ${last?.type})`);
  return broken;
}

/** The nodes where `vzctl status` says the CT runs (its code, in this process: a tool call was a Node start). */
const runningOn = (p: CtPlace): string[] =>
  p.nodes.filter((n) => / running$/.test(ctStatus(on(p, n), p.ctid)));

/**
 * Memory: restored = checksum at the freeze; or, after a rollback, the same process still running and not frozen.
 * Restart mode restarts the CT on purpose: only its disks must survive.
 */
async function brokenMemory(
  p: CtPlace,
  m: { source: string; target: string; completed: boolean; live: boolean },
  base: Baseline,
): Promise<string[]> {
  const home = m.completed ? m.target : m.source;
  const mem = await memoryChecksum<{ frozen: boolean; restoredSha256?: string }>(on(p, home), p.ctid);
  const broken: string[] = [];
  if (mem.frozen) broken.push(`the CT is still frozen on ${home}`);
  if (!m.live) return broken;
  if (m.completed) {
    const dumps = readFileSync(join(p.cluster.nodeRoot(m.source), 'var', 'log', `ct-${p.ctid}.dumps`), 'utf8')
      .trim()
      .split('\n');
    const atFreeze = (JSON.parse(dumps.at(-1)!) as { memSha256: string }).memSha256;
    if (mem.restoredSha256 !== atFreeze)
      broken.push(`restored memory ${mem.restoredSha256} ≠ memory at freeze ${atFreeze}`);
  } else {
    const pid = initPid(p, m.source);
    if (pid !== base.pid) broken.push(`the source CT was restarted (pid ${base.pid} → ${pid}): memory lost`);
  }
  return broken;
}

/**
 * Disks: initial content + every block the CT wrote (source, then target after a success) = final content, read at
 * rest (the workload is paused meanwhile); each disk's device opens the chain its descriptor names; each shared
 * disk's chain is its single base image again. After a live
 * migration the source's writes count up to the freeze (the journal's length its final dump recorded), and none may
 * follow it: each disk on the target holds the source's content at the freeze, plus what the CT wrote there since.
 */
async function brokenDisks(
  p: CtPlace,
  m: { source: string; target: string; completed: boolean; live: boolean; home: string; running: string[] },
  base: Baseline,
): Promise<string[]> {
  const broken: string[] = [];
  const paused = m.running.length === 1 ? m.running[0]! : undefined;
  if (paused) await pause(p, paused, 'freeze');
  try {
    const since = (n: string) => journalOf(p, n).slice(base.journals[n] ?? 0);
    const freeze = m.completed && m.live ? lastFreeze(p, m.source).journalLines : undefined;
    const fromSource = since(m.source);
    const atFreeze =
      freeze === undefined ? fromSource : journalOf(p, m.source).slice(base.journals[m.source] ?? 0, freeze);
    if (atFreeze.length < fromSource.length)
      broken.push(
        `the source wrote ${fromSource.length - atFreeze.length} blocks after the freeze: lost on the target`,
      );
    const writes = [...atFreeze, ...(m.completed ? since(m.target) : [])];
    const expected = base.views.map((v) => ({ ...v }));
    for (const w of writes) {
      const [disk, block, sha] = w.split(' ');
      expected[Number(disk)]![block!] = sha!;
    }
    const finalDisks = disksOn(p, m.home);
    for (const dd of finalDisks) {
      const disagree = deviceDisagreement(dd, on(p, m.home));
      if (disagree) broken.push(`${dd}: its device and descriptor disagree: ${disagree}`);
    }
    for (let i = 0; i < finalDisks.length; i++) {
      const got = view(p, m.home, finalDisks[i]!);
      const exp = expected[i]!;
      const diff = [...new Set([...Object.keys(got), ...Object.keys(exp)])].filter((k) => got[k] !== exp[k]);
      if (diff.length)
        broken.push(
          `disk ${i} (${finalDisks[i]}): ${diff.length} blocks differ from initial content + journal: ${diff
            .slice(0, 5)
            .map((b) => `${b}: ${got[b]?.slice(0, 8) ?? '-'} vs ${exp[b]?.slice(0, 8) ?? '-'}`)
            .join(', ')}`,
        );
    }
  } finally {
    if (paused) await pause(p, paused, 'thaw');
  }
  for (const d of p.shared) {
    const list = await p.cluster.ok(m.home, 'ploop', [
      'snapshot-list',
      '-H',
      '-o',
      'uuid',
      join(d, 'DiskDescriptor.xml'),
    ]);
    if (list.trim() !== baseImageUuid) broken.push(`${d}: chain is not a single base image: ${list.trim()}`);
  }
  return broken;
}

const privateOf = (p: CtPlace, n: string) => join(p.cluster.nodeRoot(n), 'vz', 'private', p.ctid);

/** Whether `$VE_PRIVATE/.ve.layout` is a link to `to`. */
function isLayoutLink(priv: string, to: string): boolean {
  try {
    return readlinkSync(join(priv, '.ve.layout')) === to;
  } catch {
    return false;
  }
}

/**
 * Ownership: the CT is registered (its /etc/vz/conf link to $VE_PRIVATE/ve.conf) and owned ($VE_PRIVATE/.owner names
 * the node) on exactly its home node, its HA resource runs there, and no node's CT lock is held any more.
 */
function brokenOwnership(p: CtPlace, home: string): string[] {
  const broken: string[] = [];
  for (const n of p.nodes) {
    const conf = join(p.cluster.nodeRoot(n), 'etc', 'vz', 'conf', `${p.ctid}.conf`);
    let link: string | undefined;
    try {
      link = readlinkSync(conf);
    } catch {
      link = undefined;
    }
    const registered = link === join(privateOf(p, n), 've.conf');
    const ownerFile = join(privateOf(p, n), '.owner');
    const owner = existsSync(ownerFile) ? readFileSync(ownerFile, 'utf8').trim() : undefined;
    if ((n === home) !== registered)
      broken.push(`CT ${n === home ? 'not ' : ''}registered on ${n} (runs on ${home})`);
    if (n === home && owner !== n) broken.push(`$VE_PRIVATE/.owner on ${n} names ${owner ?? 'nobody'}`);
    if (n !== home && owner !== undefined) broken.push(`$VE_PRIVATE/.owner left on ${n} (names ${owner})`);
    const lock = join(p.cluster.nodeRoot(n), 'vz', 'lock', `${p.ctid}.lck`);
    if (existsSync(lock))
      broken.push(`the CT lock is still held on ${n}: ${readFileSync(lock, 'utf8').trim()}`);
  }
  const at = haResource(p.cluster.clusterDir, `ct-${p.ctid}`)?.node;
  if (at !== home)
    broken.push(`the HA resource ct-${p.ctid} is on ${at ?? 'no node'}, the CT runs on ${home}`);
  return broken;
}

/** Files: no copies, locks, links, orphan deltas, stale local disks or image folders anywhere. */
function brokenLeftovers(p: CtPlace, migrationId: string, home: string): string[] {
  const broken: string[] = [];
  for (const d of p.shared) {
    const extra = readdirSync(d)
      .sort()
      .filter((f) => !['DiskDescriptor.xml', 'DiskDescriptor.xml.lck', 'root.hds'].includes(f));
    if (extra.length) broken.push(`${d}: left behind ${extra.join(', ')}`);
  }
  for (const n of p.nodes) {
    for (const d of ['root.hdd', ...(p.privateDisks ?? [])])
      if (n !== home && existsSync(join(p.cluster.nodeRoot(n), 'vz', 'private', p.ctid, d)))
        broken.push(`a stale local disk is left on ${n}${d === 'root.hdd' ? '' : ` (${d})`}`);
    // The CT's home has a ploop private area (vzctl mounts nothing else); another node keeps one only with the CT's
    // config in it (a source after a migration keeps its unregistered config), never one that holds nothing of the CT
    // (what a target made of it, or its copy's folder, after a rollback).
    const priv = privateOf(p, n);
    if (n === home && !isLayoutLink(priv, '5')) broken.push(`$VE_PRIVATE on ${n} has no .ve.layout → 5`);
    if (n !== home && existsSync(priv) && !existsSync(join(priv, 've.conf')))
      broken.push(
        `a private area with nothing of the CT in it is left on ${n}: ${readdirSync(priv).join(', ')}`,
      );
    const r = imageRootOf(p.cluster, n);
    const left = existsSync(r) ? readdirSync(r).filter((f) => f.includes(migrationId)) : [];
    if (left.length) broken.push(`image folders left on ${n}: ${left.join(', ')}`);
  }
  return broken;
}
