import { flag, withArg, type OptTable } from '../lib/tool.ts';

/*
 * vzctl's option tables, one per action, as src/vzctl.c declares them (struct option *_options[], parsed with
 * getopt_long and an empty short-option string). Read at OpenVZ/vzctl 42ab7b3876f7e0628a168ad543643d95ffd2b60d
 * (v9.0.1). Exit statuses from libvzctl lib/vzerror.h (OpenVZ/libvzctl ebbfc384de727100fd6fbf2e0c06cd925889370c):
 * VZCTL_E_INVAL_PARAMETER_SYNTAX = 20, VZCTL_E_INVAL = 21.
 */

const base = 'OpenVZ/vzctl@42ab7b3:src/vzctl.c';

export const VZ_INVALID_PARAMETER_SYNTAX = 20;
export const VZ_INVALID_PARAMETER_VALUE = 21;

/**
 * How an action parses what follows the ctid (vzctl.c main's switch):
 * - table: getopt_long over the table; `onUnknown` is the status a refused option ends with ('?' returns 21 in
 *   ParseStartOptions / ParseMigrationOptions; the default branch sets 20 in ParseStopOptions / ParseMountOptions);
 *   `checkTail`: a leftover non-option is refused with 20 (check_argv_tail).
 * - none: no getopt; any word after the ctid is "Invalid options" (20) — the switch's default branch (umount).
 * - ignore: the action reads nothing after the ctid (status).
 */
export type VzctlParse =
  | { kind: 'table'; table: OptTable; onUnknown: number; checkTail: boolean }
  | { kind: 'none'; source: string }
  | { kind: 'ignore'; source: string };

// stop_options, ParseStopOptions
const stop: OptTable = {
  source: `${base} stop_options / ParseStopOptions`,
  specs: [flag(undefined, 'fast'), flag(undefined, 'force'), flag(undefined, 'skip-umount')],
};

// start_options, ParseStartOptions
const start: OptTable = {
  source: `${base} start_options / ParseStartOptions`,
  specs: [
    flag(undefined, 'force'),
    flag(undefined, 'skip_ve_setup'),
    flag(undefined, 'wait'),
    withArg(undefined, 'osrelease'),
    flag(undefined, 'skip-fsck'),
    withArg(undefined, 'cloud-init'),
    flag(undefined, 'repair'),
  ],
};

// chkpnt_options (suspend, chkpnt), ParseMigrationOptions
const chkpnt: OptTable = {
  source: `${base} chkpnt_options / ParseMigrationOptions`,
  specs: [
    flag(undefined, 'dump'),
    flag(undefined, 'suspend'),
    flag(undefined, 'resume'),
    flag(undefined, 'kill'),
    withArg(undefined, 'flags'),
    withArg(undefined, 'context'),
    withArg(undefined, 'dumpfile'),
    flag(undefined, 'skip_arpdetect'),
    flag(undefined, 'keep_pages'),
    flag(undefined, 'unfreeze'),
    flag(undefined, 'stop-tracker'),
    flag(undefined, 'create-devmap'),
  ],
};

// restore_options (restore, resume), ParseMigrationOptions
const restore: OptTable = {
  source: `${base} restore_options / ParseMigrationOptions`,
  specs: [
    flag(undefined, 'undump'),
    flag(undefined, 'kill'),
    flag(undefined, 'resume'),
    withArg(undefined, 'dumpfile'),
    withArg(undefined, 'flags'),
    withArg(undefined, 'context'),
    flag(undefined, 'skip_arpdetect'),
    flag(undefined, 'skip-fsck'),
  ],
};

// mount_options, ParseMountOptions
const mount: OptTable = {
  source: `${base} mount_options / ParseMountOptions`,
  specs: [flag(undefined, 'skip_ve_setup'), flag(undefined, 'skipquotacheck'), flag(undefined, 'skip-fsck')],
};

// register_options, ParseRegisterOptions ('?' returns 21; check_argv_tail)
const register: OptTable = {
  source: `${base} register_options / ParseRegisterOptions`,
  specs: [
    flag(undefined, 'skip_cluster'),
    flag(undefined, 'force'),
    flag(undefined, 'renew'),
    flag(undefined, 'start'),
    withArg(undefined, 'id'),
    withArg(undefined, 'uuid'),
    withArg(undefined, 'name'),
  ],
};

export const vzctlParse: Record<string, VzctlParse> = {
  start: { kind: 'table', table: start, onUnknown: VZ_INVALID_PARAMETER_VALUE, checkTail: true },
  stop: { kind: 'table', table: stop, onUnknown: VZ_INVALID_PARAMETER_SYNTAX, checkTail: false },
  mount: { kind: 'table', table: mount, onUnknown: VZ_INVALID_PARAMETER_SYNTAX, checkTail: false },
  suspend: { kind: 'table', table: chkpnt, onUnknown: VZ_INVALID_PARAMETER_VALUE, checkTail: true },
  restore: { kind: 'table', table: restore, onUnknown: VZ_INVALID_PARAMETER_VALUE, checkTail: true },
  register: { kind: 'table', table: register, onUnknown: VZ_INVALID_PARAMETER_VALUE, checkTail: true },
  umount: { kind: 'none', source: `${base} main (switch default: "Invalid options")` },
  unregister: { kind: 'none', source: `${base} main (switch default: "Invalid options")` },
  status: { kind: 'ignore', source: `${base} main (case ACTION_STATUS)` },
};

/** Global options before the action (vzctl.c main's first loop); --configure-timeout takes a value. */
export const vzctlGlobal = {
  source: `${base} main`,
  /** Matched by prefix (STRNCOMP = strncmp over the option's length, include/config.h). */
  prefix: ['--verbose', '--quiet'],
  /** Matched by prefix too, before the exact ones: each prints and exits 0 (src/vzctl.c 1565–1574). */
  help: '--help',
  version: '--version',
  exact: ['--skiplock', '--skipowner', '--ignore-ha-cluster'],
  withValue: ['--configure-timeout'],
};

/** Version() (src/vz.c 337–340): the version of the revision these options were read from (Makefile.version). */
export const vzctlVersion = 'vzctl v.9.0.1';

/**
 * The head of vzctl's Usage() (src/vz.c 342–), printed on stdout by --help and when no action is given; it begins with
 * Version() and an empty line.
 */
export const vzctlUsage = [
  vzctlVersion,
  '',
  'Usage:',
  'vzctl destroy | mount | umount | start | stop | status | enter | console',
  'vzctl start <ctid|name> [--wait] [--repair]',
  'vzctl suspend <ctid|name>',
  'vzctl resume <ctid|name>',
].join('\n');
