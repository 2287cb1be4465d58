import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from './build.ts';
import { pidReused } from '@haul/bus';
import { killAndWait, onExit, type KillTarget } from './reaper.ts';
import type { ToolRecord } from '../../services/node-agent/src/adapters/orphaned-tools.ts';
import { createNode, emuEnv, type EmuEnv } from '@haul/host-emulators';

/** The emulators' bin folder: put first on PATH, exactly as production would have the real tools there. */
export const emulatorBin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'host-emulators', 'bin');

export type RunResult = { code: number; stdout: string; stderr: string };

export type EmulatedCluster = {
  dir: string;
  shared: string;
  clusterDir: string;
  nodeRoot(node: string): string;
  /** The emulators' view of `node`, for their code called in this process (proof seams, setup, status). */
  emuEnv(node: string): EmuEnv;
  /** Environment under which a process acts as `node`: HAUL_EMU_ROOT and PATH with the emulators first. */
  envFor(node: string, extra?: Record<string, string>): NodeJS.ProcessEnv;
  run(node: string, tool: string, args: string[], extra?: Record<string, string>): Promise<RunResult>;
  /** Fails the test with the tool's stderr when the exit code is not 0. */
  ok(node: string, tool: string, args: string[], extra?: Record<string, string>): Promise<string>;
  /** plainCriu: criu dumps plain process trees, without VZ's pieces (haul-emu create-node --plain-criu). */
  addNode(
    node: string,
    opts?: { criuVersion?: string; memTrack?: boolean; plainCriu?: boolean },
  ): Promise<void>;
  /**
   * Kill what the nodes still run (by PID from their state: the tools and held dumps their agents left, the emulated
   * CTs), wait until it is gone, and remove the folder (`keepFiles`: kill only, for a look afterwards).
   */
  destroy(opts?: { keepFiles?: boolean }): void;
};

/**
 * What an emulated node's processes inherit: this process's environment without NODE_EXTRA_CA_CERTS. Node reads and
 * parses that bundle at every start (~70 ms of CPU with a system bundle of ~150 certificates), and every emulated
 * tool call, service and CLI call is a Node start; nothing on an emulated node talks to a server outside it.
 */
export function inheritedEnv(): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _extraCa, ...env } = process.env;
  return env;
}

/** Where a node's agent keeps its state (HAUL_STATE_DIR) in an emulated node's folder. */
export const agentStateDir = (nodeRoot: string): string => join(nodeRoot, 'var', 'lib', 'haul');

/**
 * The pid `read` finds in a record; none when the record is gone or half written (the process ended, or is ending,
 * meanwhile): this runs at exit too, where nothing may throw.
 */
function recordedPid(read: () => number | undefined): number | undefined {
  try {
    const pid = read();
    return pid && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The files of a folder that may not exist; none when it does not. */
const filesOf = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir) : []);

/**
 * What a node's agent left running that it started apart from itself, each the leader of its own process group: the
 * host tools it was running (recorded in <state>/tools/<pid> with their start time: a group whose leader now is
 * another process is not one of them, one whose leader is gone may still have members, as the agent's own
 * endOrphanedTools judges), and final dumps held at post-dump (criu and haul-hold-frozen, whose leader's pid is in
 * <state>/held/<migration>/criu.pid, its start time beside it in criu.start), which wait for a decision forever once
 * their agent is gone.
 */
function agentGroups(stateDir: string): KillTarget[] {
  const tools = filesOf(join(stateDir, 'tools')).map((f) =>
    recordedPid(() => {
      const rec = JSON.parse(readFileSync(join(stateDir, 'tools', f), 'utf8')) as ToolRecord;
      return pidReused(rec.pid, rec.start) ? undefined : rec.pid;
    }),
  );
  const held = filesOf(join(stateDir, 'held')).map((m) =>
    recordedPid(() => {
      const pid = Number(readFileSync(join(stateDir, 'held', m, 'criu.pid'), 'utf8'));
      const startFile = join(stateDir, 'held', m, 'criu.start');
      const start = existsSync(startFile) ? readFileSync(startFile, 'utf8') : undefined;
      return pidReused(pid, start) ? undefined : pid;
    }),
  );
  return [...tools, ...held].filter((p) => p !== undefined).map((pid) => ({ pid, group: true }));
}

/** Each running CT of a node (<ctid>.json; a .tmp beside it is one being written, not a CT). */
function cts(nodeRoot: string): KillTarget[] {
  const dir = join(nodeRoot, 'var', 'lib', 'haul-emu', 'cts');
  return filesOf(dir)
    .filter((n) => n.endsWith('.json'))
    .map((f) =>
      recordedPid(() => {
        // The CT's init, unless its pid names another process now (a record a SIGKILLed CT left; by start time).
        const rec = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { pid?: number; start?: string };
        return rec.pid && !pidReused(rec.pid, rec.start) ? rec.pid : undefined;
      }),
    )
    .filter((p) => p !== undefined)
    .map((pid) => ({ pid }));
}

export function createEmulatedCluster(prefix = 'haul-emu-'): EmulatedCluster {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const shared = join(dir, 'shared');
  const clusterDir = join(dir, 'cluster');
  const nodes: string[] = [];
  const c: EmulatedCluster = {
    dir,
    shared,
    clusterDir,
    nodeRoot: (node) => join(dir, node),
    emuEnv: (node) => emuEnv({ HAUL_EMU_ROOT: join(dir, node) }),
    envFor: (node, extra = {}) => ({
      ...inheritedEnv(),
      HAUL_EMU_ROOT: join(dir, node),
      PATH: `${emulatorBin}:${process.env['PATH'] ?? ''}`,
      ...extra,
    }),
    run(node, tool, args, extra) {
      return new Promise((resolve, reject) => {
        const child = spawn(tool, args, { env: c.envFor(node, extra), stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.once('error', reject);
        child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });
    },
    async ok(node, tool, args, extra) {
      const r = await c.run(node, tool, args, extra);
      if (r.code !== 0) throw new Error(`${tool} ${args.join(' ')} on ${node} exited ${r.code}: ${r.stderr}`);
      return r.stdout;
    },
    addNode(node, opts = {}) {
      // In this process (haul-emu create-node's own code): a tool call would be a Node start for a few files.
      createNode({ root: join(dir, node), node, cluster: clusterDir, ...opts });
      nodes.push(node);
      return Promise.resolve();
    },
    destroy(opts = {}) {
      // The tools first, as one of them may be starting a CT; then the CTs (not in the tools' groups: they left them,
      // as real CTs do); each gone before the next look, and all gone before the folder goes.
      const left = [
        ...killAndWait(nodes.flatMap((n) => agentGroups(agentStateDir(join(dir, n))))),
        ...killAndWait(nodes.flatMap((n) => cts(join(dir, n)))),
      ];
      if (left.length > 0)
        process.stderr.write(`emulated cluster ${dir}: still there after SIGKILL: ${JSON.stringify(left)}\n`);
      if (!opts.keepFiles) rmSync(dir, { recursive: true, force: true });
    },
  };
  // Containers are detached processes of the emulators: if the test process dies without destroy(), kill them too.
  const cancel = onExit(() => c.destroy());
  const destroy = c.destroy.bind(c);
  c.destroy = (opts) => {
    cancel();
    destroy(opts);
  };
  return c;
}
