import { mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createEmulatedCluster, type EmulatedCluster } from '@haul/test';

/*
 * The setting of the per-VE sysctl tests (core-pattern, ve-sysctls): CT 300 on node-a, defined on node-b, and a
 * dump on node-a whose criu action script saves some /proc files of the VE at post-dump, as vz-cpt-action does
 * (`cgexec -g ve:$VEID cat /proc/sys/<…> > $CRTOOLS_IMAGE_DIR/vz_<…>.img || exit 1`).
 */

export const ctid = '300';

/**
 * Two emulated nodes with plain criu, CT 300 on node-a (4 MiB, idle disk) and on node-b its configuration and the
 * private area's layout (layoutCopied).
 */
export async function ctOnTwoNodes(): Promise<EmulatedCluster> {
  const c = createEmulatedCluster();
  await c.addNode('node-a', { plainCriu: true });
  await c.addNode('node-b', { plainCriu: true });
  const ct = ['--ctid', ctid, '--memory-mb', '4', '--dirty-rate', '100', '--disk-writes', '0'];
  await c.ok('node-a', 'haul-emu', ['create-ct', ...ct]);
  await c.ok('node-b', 'haul-emu', ['create-ct', '--ctid', ctid, '--config-only']);
  layoutCopied(c, ctid);
  return c;
}

/**
 * What a migration brings to the target's private area besides the disks, at least: its layout link (vzmigrate's
 * tar of the whole private area keeps it; vzctl mounts only a private area of layout 5).
 */
export function layoutCopied(c: EmulatedCluster, id: string, from = 'node-a', to = 'node-b'): void {
  const privateOf = (node: string) => join(c.nodeRoot(node), 'vz', 'private', id);
  mkdirSync(privateOf(to), { recursive: true });
  symlinkSync(readlinkSync(join(privateOf(from), '.ve.layout')), join(privateOf(to), '.ve.layout'));
}

/** A side file the action script saves: the VE's /proc file and the image it goes to. */
export type Saved = { proc: string; image: string };

/**
 * Dump the running CT on node-a into a fresh folder `img/<n>`, saving `save` at post-dump; the folder. The CT's
 * tasks are gone after (criu dump without --leave-running).
 */
export async function dumpSaving(c: EmulatedCluster, n: number, save: readonly Saved[]): Promise<string> {
  const pid = readFileSync(join(c.nodeRoot('node-a'), 'var', 'run', 've', `${ctid}.init.pid`), 'utf8').trim();
  const img = join(c.dir, 'img', String(n));
  mkdirSync(img, { recursive: true });
  const hold = join(c.dir, `post-dump-${n}.sh`);
  writeFileSync(
    hold,
    `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0\n` +
      save
        .map((s) => `cgexec -g ve:${ctid} cat ${s.proc} > "$CRTOOLS_IMAGE_DIR/${s.image}" || exit 1\n`)
        .join(''),
    { mode: 0o755 },
  );
  await c.ok('node-a', 'criu', ['dump', '-t', pid, '-D', img, '--action-script', hold]);
  return img;
}
