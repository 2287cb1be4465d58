import { flag, withArg, type OptTable } from '../lib/tool.ts';

/*
 * shaman, Virtuozzo's HA cluster manager: its own sources were not available to read. What is emulated is what its
 * callers pass, read at OpenVZ/libvzctl@ebbfc38 lib/ha.c (shaman_add_resource: `shaman -i add ct-<ctid> --prio <p>
 * --path <VE_PRIVATE> --force`; shaman_del_resource: `shaman -i del ct-<ctid>`; shaman_del_everywhere: `shaman -i -q
 * del-everywhere ct-<ctid>`; shaman_is_configured: `shaman info`) and OpenVZ/vzmigrate@67a5a95 bin/migratecom.cpp
 * (runHaman: `-i -q <cmd> ct-<ctid> …`; getHaClusterNodeID reads the `ID :` line of `shaman -i -q info`). Exit 2
 * for `add` of a resource that exists is what lib/ha.c handle_set_cmd_on_ha_cluster expects ("try to guess action
 * if failed"); the other refusals' codes (1) are the emulator's own.
 */

/** Options before the command (as libvzctl and vzmigrate place -i and -q). */
export const shamanGlobal: OptTable = {
  source: 'libvzctl lib/ha.c, vzmigrate bin/migratecom.cpp runHaman (callers; shaman itself not read)',
  specs: [flag('i'), flag('q'), flag('v')],
};

export const shamanAdd: OptTable = {
  source: 'libvzctl lib/ha.c shaman_add_resource, handle_set_cmd_on_ha_cluster',
  specs: [withArg(undefined, 'prio'), withArg(undefined, 'path'), flag(undefined, 'force')],
};

export const shamanUsage = [
  'Usage: shaman [-i] [-q] COMMAND',
  '  add RESOURCE [--prio N] [--path PATH] [--force]',
  '  del RESOURCE',
  '  del-everywhere RESOURCE',
  '  info',
].join('\n');
