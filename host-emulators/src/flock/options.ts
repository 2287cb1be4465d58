import { flag, withArg, type OptTable } from '../lib/tool.ts';

/*
 * util-linux flock(1), read at util-linux/util-linux@39465c7 sys-utils/flock.c main: getopt_long with
 * "+:sexnoFuw:E:hV?" (the leading '+' stops at the first non-option: the file, then the command and its own
 * arguments), long_options as below. Usage errors exit EX_USAGE (64); a lock not had within -w (or at once with -n)
 * exits the conflict exit code, 1 unless -E says otherwise, silently unless --verbose.
 */
export const EX_USAGE = 64;

export const flockOptions: OptTable = {
  source: 'util-linux@39465c7 sys-utils/flock.c main (long_options)',
  specs: [
    flag('s', 'shared'),
    flag('x', 'exclusive'),
    flag('e'),
    flag('u', 'unlock'),
    flag('n', 'nonblocking', 'nb'),
    withArg('w', 'timeout', 'wait'),
    withArg('E', 'conflict-exit-code'),
    flag('o', 'close'),
    flag('F', 'no-fork'),
    withArg('c', 'command'),
    flag(undefined, 'verbose'),
  ],
};
