import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from './build.ts';
import { onExit } from './reaper.ts';
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
   * Kill every emulated CT process (by PID from the node state) and remove the folder (`keepFiles`: kill the CTs
   * only, for a look afterwards).
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
 * SIGKILL the process whose pid `read` finds (its whole process group with `group`). A record gone or half written
 * (the process ended, or is ending, meanwhile) is skipped: this runs at exit too, where nothing may throw.
 */
function killRecorded(read: () => number | undefined, group: boolean): void {
  let pid: number | undefined;
  try {
    pid = read();
  } catch {
    return;
  }
  if (!pid || !(pid > 0)) return;
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
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
      for (const node of nodes) {
        // A final dump held at post-dump (criu and haul-hold-frozen, started detached in a process group of their
        // own, whose leader's pid the agent keeps in held/<migration>/criu.pid) waits for a decision forever once
        // its agent is gone: its whole group goes.
        const held = join(agentStateDir(join(dir, node)), 'held');
        for (const m of existsSync(held) ? readdirSync(held) : [])
          killRecorded(() => Number(readFileSync(join(held, m, 'criu.pid'), 'utf8')), true);
        // Each running CT's record (<ctid>.json; a .tmp beside it is one being written, not a CT).
        const cts = join(dir, node, 'var', 'lib', 'haul-emu', 'cts');
        for (const f of existsSync(cts) ? readdirSync(cts).filter((n) => n.endsWith('.json')) : [])
          killRecorded(() => (JSON.parse(readFileSync(join(cts, f), 'utf8')) as { pid?: number }).pid, false);
      }
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
