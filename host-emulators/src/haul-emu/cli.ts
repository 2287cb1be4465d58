import { ToolExit, emuEnv, paths, type EmuEnv } from '../lib/emu-env.ts';
import { acquireLock } from '../lib/lock.ts';
import { getopt, out } from '../lib/tool.ts';
import { resolveDd } from '../ploop/ops.ts';
import { corruptionLog, diskChecksum, diskView, haResource, memoryChecksum, pauseWorkload } from './seams.ts';
import { createCt, createNode, writeBootId, type CtOptions, type NodeOptions } from './setup.ts';
import { writeFully } from '../lib/write-fully.ts';

const help = `haul-emu: set up emulated nodes and containers, and read the emulator-only proof seams.

  haul-emu create-node --root DIR --node NAME --cluster DIR [--criu-version V] [--no-mem-track] [--cpu-flags a,b]
                     [--plain-criu]     (criu dumps without VZ's pieces: --freeze-cgroup, --root, externals)
  haul-emu create-ct --ctid ID [--memory-mb 64] [--dirty-rate PAGES/S] [--disk-writes BLOCKS/S] [--seed N]
                     [--disk-size 64M] [--disk-fill MB] [--writeback-ms MS] [--shared-disk DIR]...
                     [--relative-disks] [--config-only]                           (HAUL_EMU_ROOT names the node)
                     --relative-disks: DISK= as VZ7 writes it (libvzctl lib/disk.c disk2str): the root disk
                     (image=root.hdd,mnt=/) and a secondary local disk (image=disk1.hdd) relative to VE_PRIVATE,
                     then the shared disks (absolute)
  haul-emu checksum-mem CTID        memory checksum of a running CT (JSON)
  haul-emu checksum-disk DD.xml     content checksum of the disk as its CT sees it: the merged view of the chain and,
                                    when mounted on this node, the page cache on top (JSON)
  haul-emu disk-view DD.xml         block → sha256 of that view (JSON), to replay a CT's write journal against
  haul-emu freeze|thaw CTID         pause or resume a CT's workload (to read its disks at rest)
  haul-emu corruption-log           refused double read-write attaches recorded in this cluster (JSON lines)
  haul-emu hold-lock DD.xml [--ms N] hold the descriptor's lock (to make ploop time out with exit 23)
  haul-emu ha-resource ct-CTID       where the HA cluster runs the CT (JSON: node, path, prio)
  haul-emu new-boot-id              give the node a new proc/sys/kernel/random/boot_id, as a reboot would (nothing
                                    else of a reboot is emulated)`;

export async function haulEmuMain(argv: string[]): Promise<number> {
  const cmd = argv[0];
  const { opts, args } = getopt(argv.slice(1), [
    '--root',
    '--node',
    '--cluster',
    '--criu-version',
    '--cpu-flags',
    '--ctid',
    '--memory-mb',
    '--dirty-rate',
    '--disk-writes',
    '--seed',
    '--disk-size',
    '--disk-fill',
    '--writeback-ms',
    '--shared-disk',
    '--ms',
  ]);
  const one = (k: string) => opts.get(k)?.at(-1);
  switch (cmd) {
    case 'create-node': {
      const o: NodeOptions = {
        root: need(one('--root'), '--root'),
        node: need(one('--node'), '--node'),
        cluster: need(one('--cluster'), '--cluster'),
        memTrack: !opts.has('--no-mem-track'),
        plainCriu: opts.has('--plain-criu'),
      };
      const criuVersion = one('--criu-version');
      if (criuVersion !== undefined) o.criuVersion = criuVersion;
      const cpuFlags = one('--cpu-flags');
      if (cpuFlags !== undefined) o.cpuFlags = cpuFlags.split(',');
      out(createNode(o));
      return 0;
    }
    case 'create-ct': {
      const o: CtOptions = {
        ctid: need(one('--ctid'), '--ctid'),
        shared: opts.get('--shared-disk') ?? [],
        relativeDisks: opts.has('--relative-disks'),
        configOnly: opts.has('--config-only'),
      };
      for (const [flag, key, whole] of [
        ['--memory-mb', 'memoryMb', true],
        ['--dirty-rate', 'dirtyRate', false],
        ['--disk-writes', 'diskWrites', false],
        ['--seed', 'seed', true],
        ['--disk-fill', 'diskFill', true],
        ['--writeback-ms', 'writebackMs', true],
      ] as const) {
        const v = one(flag);
        if (v !== undefined) o[key] = amount(v, flag, whole);
      }
      const size = one('--disk-size');
      if (size !== undefined) o.diskSize = size;
      out(createCt(emuEnv(), o));
      return 0;
    }
    case 'checksum-mem': {
      const env = emuEnv();
      const ctid = need(args[0], 'CTID');
      try {
        out(JSON.stringify(await memoryChecksum(env, ctid)));
      } catch (e) {
        throw new ToolExit(1, (e as Error).message);
      }
      return 0;
    }
    case 'freeze':
    case 'thaw': {
      const env = emuEnv();
      const ctid = need(args[0], 'CTID');
      await pauseWorkload(env, ctid, cmd);
      out(`${cmd === 'freeze' ? 'frozen' : 'thawed'} CT ${ctid}`);
      return 0;
    }
    case 'checksum-disk': {
      out(JSON.stringify(diskChecksum(resolveDd(need(args[0], 'DD.xml')), nodeEnv())));
      return 0;
    }
    case 'disk-view': {
      out(JSON.stringify(diskView(resolveDd(need(args[0], 'DD.xml')), nodeEnv())));
      return 0;
    }
    case 'corruption-log': {
      writeFully(1, corruptionLog(emuEnv().clusterDir));
      return 0;
    }
    case 'ha-resource': {
      const r = haResource(emuEnv().clusterDir, need(args[0], 'RESOURCE'));
      if (!r) throw new ToolExit(1, `no HA resource ${args[0]}`);
      out(JSON.stringify(r));
      return 0;
    }
    case 'new-boot-id': {
      writeBootId(emuEnv().root);
      return 0;
    }
    case 'hold-lock': {
      const env = emuEnv();
      const dd = resolveDd(need(args[0], 'DD.xml'));
      const release = acquireLock(paths.locks(env.clusterDir), `${dd}.lck`, 60_000);
      if (!release) throw new ToolExit(23, `could not take ${dd}.lck`);
      out('held');
      process.on('SIGTERM', () => {
        release();
        process.exit(0);
      });
      await new Promise((r) => setTimeout(r, Number(one('--ms') ?? 3_600_000)));
      release();
      return 0;
    }
    case '--help':
    case 'help':
    case undefined:
      out(help);
      return cmd === undefined ? 2 : 0;
    default:
      throw new ToolExit(2, `unknown command ${cmd}\n${help}`);
  }
}

const need = (v: string | undefined, what: string): string => {
  if (v === undefined) throw new ToolExit(2, `${what} is required (see haul-emu --help)`);
  return v;
};

/** The node a proof seam reads on, when HAUL_EMU_ROOT names one (a disk's page cache lives on its node). */
const nodeEnv = (): EmuEnv | undefined => (process.env['HAUL_EMU_ROOT'] ? emuEnv() : undefined);

/** A number given on the command line (0 or more; `whole`: an integer), or the usage error that names its flag. */
const amount = (v: string, flag: string, whole: boolean): number => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || (whole && !Number.isInteger(n)))
    throw new ToolExit(
      2,
      `${flag}: ${JSON.stringify(v)} is not ${whole ? 'a whole number' : 'a number'}, 0 or more`,
    );
  return n;
};
