import {
  existsSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ToolExit, paths, type EmuEnv } from '../lib/emu-env.ts';
import { out } from '../lib/tool.ts';

/*
 * Registration and ownership as libvzctl does them (OpenVZ/libvzctl@ebbfc38 lib/vz.c): a CT is registered on a node
 * when /etc/vz/conf/<ctid>.conf is a symlink to $VE_PRIVATE/ve.conf, and owned by it when $VE_PRIVATE/.owner names
 * the node's server id (SERVER_UUID of vz.conf, else the host name: get_serverid; the emulated node's name here).
 * vzctl2_env_register writes .owner, sets VEID in ve.conf and makes the link; vzctl2_env_unreg refuses a running
 * CT, unmounts a mounted one, removes VEID, .owner and the link. Not emulated: the HA cluster calls both make only
 * for a private area on a shared file system (is_shared_fs), which an emulated node's private area never is, and
 * the owner check, which libvzctl also makes only there (vzctl_check_owner_quiet).
 */

export const veConf = (vePrivate: string): string => join(vePrivate, 've.conf');
export const ownerFile = (vePrivate: string): string => join(vePrivate, '.owner');

/** The server id libvzctl writes into .owner on this node. */
export const serverId = (env: EmuEnv): string => env.node;

/** Is the CT registered here: its config a link to $VE_PRIVATE/ve.conf? */
export function isRegistered(env: EmuEnv, ctid: string, vePrivate: string): boolean {
  const conf = paths.ctConf(env, ctid);
  try {
    return lstatSync(conf).isSymbolicLink() && readlinkSync(conf) === veConf(vePrivate);
  } catch {
    return false;
  }
}

/** `vzctl register <path> <ctid> [--force]` (vzctl2_env_register; exit -1 → 255 on any error). */
export function register(env: EmuEnv, path: string, ctid: string, force: boolean): number {
  if (!existsSync(path)) throw new ToolExit(255, `Unable to stat ${path}: No such file or directory`);
  const conf = veConf(path);
  if (!existsSync(conf)) throw new ToolExit(255, `Error: Broken Container, no ${conf} file found`);
  const etc = paths.ctConf(env, ctid);
  // validate_eid (skipped with --force): an existing config must already be this registration's link.
  if (!force && existsSync(etc) && !lstatSync(etc).isSymbolicLink())
    throw new ToolExit(255, `Container configuration file ${etc} is not a link`);
  writeFileSync(ownerFile(path), serverId(env));
  writeFileSync(conf, withVeid(readFileSync(conf, 'utf8'), ctid));
  rmSync(etc, { force: true });
  symlinkSync(conf, etc);
  out(`Container ${ctid} was successfully registered`);
  return 0;
}

/** `vzctl unregister <ctid>` (vzctl2_env_unreg), after the caller refused a running CT and unmounted it. */
export function unregister(env: EmuEnv, ctid: string, vePrivate: string): number {
  const etc = paths.ctConf(env, ctid);
  if (existsSync(veConf(vePrivate)))
    writeFileSync(veConf(vePrivate), withVeid(readFileSync(veConf(vePrivate), 'utf8'), undefined));
  rmSync(ownerFile(vePrivate), { force: true });
  rmSync(etc, { force: true });
  out('Container unregistered succesfully');
  return 0;
}

/** The config body with VEID set to `ctid` (or removed). */
function withVeid(body: string, ctid: string | undefined): string {
  const lines = body.split('\n').filter((l) => !/^VEID=/.test(l));
  if (ctid !== undefined)
    lines.splice(lines.length && lines.at(-1) === '' ? -1 : lines.length, 0, `VEID="${ctid}"`);
  return lines.join('\n');
}
