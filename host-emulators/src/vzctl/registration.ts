import {
  existsSync,
  lstatSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ToolExit, paths, type EmuEnv } from '../lib/emu-env.ts';
import { out } from '../lib/tool.ts';
import { parseConf } from './config.ts';
import { ctidOf, normalizedUuid } from './ctid.ts';
import { randomUuid } from '../lib/uuid.ts';
import { layoutVersion } from './layout.ts';

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

/** What `vzctl register` was told besides the path and the ctid. */
export type RegisterOptions = {
  /** --force, or the global --skipowner (src/vzctl.c main: `skipowner == YES ? VZ_REG_FORCE`): no validate_eid. */
  force: boolean;
  /** --uuid/--id, as vzctl2_parse_ctid read it (ParseRegisterOptions). */
  uuid?: string;
};

/**
 * `vzctl register <path> [<ctid>] [options]`, as libvzctl's vzctl2_env_register (lib/vz.c 875–1090 at ebbfc38) does
 * it on a private area of a local file system: the ctid and UUID pair (get_cid_uuid_pair, lib/env.c 1831–1877: no
 * ctid given → a new UUID for both; a UUID ctid is its own UUID; a number keeps the config's UUID= or gets a new
 * one), validate_eid unless forced, `.owner`, then ve.conf's VE_PRIVATE (renew_VE_PRIVATE: `<dir>/$VEID` when the
 * path given is `<dir>/<ctid>`), VEID and UUID, and the link /etc/vz/conf/<ctid>.conf → <realpath>/ve.conf. Any
 * failure is -1 (exit 255); those after the config is open also print "Container registration failed: …". First of
 * all the private area's layout (lib/vz.c 906–911): below 4 (no `.ve.layout` link at all, say) it is refused, forced
 * or not. Not emulated: CT names, refused.
 */
export function register(env: EmuEnv, path: string, given: string | undefined, o: RegisterOptions): number {
  if (!existsSync(path)) throw new ToolExit(255, `Unable to stat ${path}: No such file or directory`);
  const real = realpathSync(path);
  if (layoutVersion(real) < 4)
    throw new ToolExit(255, 'Warning: Container in old data format, registration skipped.');
  const conf = veConf(real);
  if (!existsSync(conf)) throw new ToolExit(255, `Error: Broken Container, no ${conf} file found`);
  const body = readFileSync(conf, 'utf8');
  const params = parseConf(body);
  // vzctl2_env_register restores the CT's name (lib/vz.c 1015–1049: /etc/vz/names/<name>, "Assign the name").
  if (params['NAME'])
    throw new ToolExit(
      255,
      `Error (emulator): ${conf} names the CT ${params['NAME']}: CT names are not emulated`,
    );
  const { ctid, uuid } = cidUuidPair(given, o.uuid ?? params['UUID']);
  if (!o.force) validateEid(env, conf, ctid, params['VEID']);
  writeFileSync(ownerFile(path), serverId(env));
  writeFileSync(conf, withParams(body, { VE_PRIVATE: renewedPrivate(path, ctid), VEID: ctid, UUID: uuid }));
  const etc = paths.ctConf(env, ctid);
  rmSync(etc, { force: true });
  symlinkSync(conf, etc);
  out(`Container ${ctid} was successfully registered`);
  return 0;
}

/** A failure after the config was opened: the reason, then libvzctl's summary line (vzctl2_env_register's `err:`). */
const failed = (why: string): ToolExit => new ToolExit(255, `${why}\nContainer registration failed: ${why}`);

/** get_cid_uuid_pair (lib/env.c 1831–1877): the ctid and the UUID the registration writes. */
function cidUuidPair(ctid: string | undefined, uuid: string | undefined): { ctid: string; uuid: string } {
  if (ctid === undefined) {
    const made = randomUuid(); // vzctl2_generate_ctid: uuid_generate, uuid_unparse (lower case)
    return { ctid: made, uuid: made };
  }
  if (uuid === undefined) return { ctid, uuid: normalizedUuid(ctid) ?? randomUuid() };
  const normal = normalizedUuid(uuid);
  // Worded apart by the branch a UUID ctid and a numeric one take (lib/env.c 1854 and 1871).
  if (!normal) throw failed(normalizedUuid(ctid) ? `Invalid uuid: ${uuid}` : `Invalid uuid ${uuid}`);
  return { ctid, uuid: normal };
}

/**
 * validate_eid (lib/vz.c 802–846): refused when the config's VEID is registered to this very ve.conf already, when
 * /etc/vz/conf/<ctid>.conf is not a link, or when it links to another CT's ve.conf (a dangling link is taken over).
 */
function validateEid(env: EmuEnv, conf: string, ctid: string, veid: string | undefined): void {
  const same = (a: string, b: string) => {
    const x = statSync(a);
    const y = statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  };
  const registeredAs = veid === undefined ? undefined : ctidOf(veid);
  if (registeredAs !== undefined) {
    const link = paths.ctConf(env, registeredAs);
    if (existsSync(link) && same(link, conf))
      throw failed(`Container is already registered with id ${registeredAs}`);
  }
  const etc = paths.ctConf(env, ctid);
  let st;
  try {
    st = lstatSync(etc);
  } catch {
    return;
  }
  if (!st.isSymbolicLink()) throw failed(`Container configuration file ${etc} is not a link`);
  if (existsSync(etc) && !same(etc, conf)) throw failed(`Error: Container ID ${ctid} is used`);
}

/** renew_VE_PRIVATE (lib/vz.c 848–867): `<dir>/$VEID` for a path given as `<dir>/<ctid>`, else the path as given. */
function renewedPrivate(path: string, ctid: string): string {
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : path;
  return path === `${dir}/${ctid}` ? `${dir}/$VEID` : path;
}

/** `vzctl unregister <ctid>` (vzctl2_env_unreg), after the caller refused a running CT and unmounted it. */
export function unregister(env: EmuEnv, ctid: string, vePrivate: string): number {
  const etc = paths.ctConf(env, ctid);
  if (existsSync(veConf(vePrivate)))
    writeFileSync(
      veConf(vePrivate),
      withParams(readFileSync(veConf(vePrivate), 'utf8'), { VEID: undefined }),
    );
  rmSync(ownerFile(vePrivate), { force: true });
  rmSync(etc, { force: true });
  out('Container unregistered succesfully');
  return 0;
}

/**
 * The config body with each parameter set (a line of its own, replacing any before) or, undefined, removed; what
 * vzctl2_env_set_param and vzctl2_env_save_conf make of it, without their rewriting of the other lines.
 */
function withParams(body: string, set: Record<string, string | undefined>): string {
  const names = Object.keys(set);
  const lines = body.split('\n').filter((l) => !names.some((n) => l.startsWith(`${n}=`)));
  const added = Object.entries(set).flatMap(([n, v]) => (v === undefined ? [] : [`${n}="${v}"`]));
  lines.splice(lines.length && lines.at(-1) === '' ? -1 : lines.length, 0, ...added);
  return lines.join('\n');
}
