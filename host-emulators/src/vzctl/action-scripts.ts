import { statSync } from 'node:fs';
import { join } from 'node:path';
import { ToolExit, paths, type EmuEnv } from '../lib/emu-env.ts';
import { childProcess } from '../lib/lazy.ts';
import type { CtConf } from './config.ts';

/*
 * The mount action scripts, as libvzctl runs them (OpenVZ/libvzctl@ebbfc38). vzctl2_env_mount runs the premount
 * scripts, mounts, then the mount scripts; vzctl2_env_umount the umount scripts, unmounts, then the postumount scripts
 * (lib/fs.c 222–256, 293–307). `vzctl mount`, a start and a restore mount this way (the last two unmount a CT mounted
 * already first); `vzctl umount`, a stop, a suspend and an unregister unmount this way (cli.ts says where a failure
 * fails the command, as libvzctl does).
 *
 * Each action has two scripts, the node's `/etc/vz/conf/vps.<action>` and the CT's own `$VE_PRIVATE/scripts/<action>`
 * (layout 4 and later, or 0: get_action_script_path, lib/util.c 1348–1355): the node's first for premount and mount,
 * the CT's first for umount and postumount (get_action_script 1357–1386). Each that stat finds runs on the host with
 * VEID and VE_CONFFILE set (run_action_scripts 1388–1412), its output on vzctl's stderr (vzctl2_exec_script
 * 1312–1338). An exit status other than 0 fails the action with VZCTL_E_ACTIONSCRIPT, 79, "Error on executing the
 * mount script <path>", except 39 (VZCTL_E_SKIP_ACTION, lib/vzerror.h 69), which goes on to the next script: when the
 * last script that ran said 39, the premount scripts skip the mount itself (the mount scripts still run), and the
 * others end the action with 39 and no message. A mount whose mount scripts failed is unmounted again, without
 * scripts.
 *
 * Not emulated: the `start` and `stop` scripts, which libvzctl runs inside the CT (lib/env.c 1073, 1330, 286), and
 * the wrapper libvzctl runs a script through (lib/exec.c do_wrap_env_exec_script: bash's environment): here the
 * script is run directly, with this process's environment.
 */

export type MountAction = 'premount' | 'mount' | 'umount' | 'postumount';

/** VZCTL_E_SKIP_ACTION: a script's way to say the action is not to be done. */
export const skipAction = 39;

/** VZCTL_E_ACTIONSCRIPT. */
const actionScriptFailed = 79;

/** stat_file (lib/common.c 148–160): a script is skipped only when stat says it is not there; an error runs it. */
function statFinds(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

/** The two scripts of an action, in the order libvzctl runs them. */
export function actionScriptPaths(env: EmuEnv, conf: CtConf, action: MountAction): string[] {
  const node = join(paths.ctConf(env, conf.ctid), '..', `vps.${action}`);
  const own = join(conf.vePrivate, 'scripts', action);
  return action === 'premount' || action === 'mount' ? [node, own] : [own, node];
}

/**
 * Run an action's scripts: 0, or skipAction when the last one that ran said so; a failed one throws vzctl's exit.
 */
export function runActionScripts(env: EmuEnv, conf: CtConf, action: MountAction): number {
  const { spawnSync } = childProcess();
  let status = 0;
  for (const script of actionScriptPaths(env, conf, action)) {
    if (!statFinds(script)) continue;
    const r = spawnSync(script, [], {
      stdio: ['ignore', 2, 2],
      env: { ...process.env, VEID: conf.ctid, VE_CONFFILE: paths.ctConf(env, conf.ctid) },
    });
    status = r.status ?? -1;
    if (status !== 0 && status !== skipAction)
      throw new ToolExit(actionScriptFailed, `Error on executing the mount script ${script}`);
  }
  return status;
}
