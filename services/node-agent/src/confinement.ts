import { lstatSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { errorCodes, imageDirName } from '@haul/domain';
import type { ErrorInfo, MigrationEvent, StepCommand, StepName } from '@haul/schemas';

/**
 * What a command may ask of this host (docs/protocol.md, "Paths on the host"). Every path field of every agent step
 * must resolve, after symlinks, inside the place its field allows; a final dump may hold a CT frozen for at most the
 * node's cap. The agent runs this once per command, right before the step's handler, and the handler gets the
 * command with every checked path replaced by its resolved form, so it acts on the path that was checked.
 *
 * What remains (time of check to time of use): a directory below a root swapped for a symlink between this check and
 * the host tool opening the path is followed by the tool (vzctl, criu and ploop open paths as they are given). That
 * needs write access below the roots, which only root and the tools themselves have on a hypervisor. The files the
 * agent writes itself are created with O_CREAT|O_EXCL (a symlink in the way fails the step instead of being
 * followed), and removals never follow a symlink (rm of a link removes the link).
 */

/** This node's roots and bounds (AgentConfig; validated at start by settings.ts). */
export type HostBounds = {
  imageRoot: string;
  sharedRoots: readonly string[];
  /** The longest a final dump may hold a CT frozen without a decision. */
  maxLeaseMs: number;
};

/**
 * Where a path field may point:
 * - `migrationFolder`: exactly the command's migration's image folder, `<imageRoot>/haul-<migrationId>`;
 * - `inMigrationFolder`: strictly below it (iteration images, criu's work folder);
 * - `previousImages`: `../<n>` from the field `imageDir`, strictly below that folder as well;
 * - `shared`: strictly below a configured shared-storage root (shared ploop disks);
 * - `removable`: what `removeFiles` may delete — the migration's image folder itself, or a folder strictly below the
 *   `VE_PRIVATE` of the migration's CT (a local disk copied to the target, or left stale on the source) when the
 *   migration's log holds this very command as intended by the coordinator. The last component is not followed.
 *   Beyond the paths, the handler removes that `VE_PRIVATE` itself when what is left holds nothing of the CT
 *   (handlers/lifecycle.ts removeFiles, adapters/private-area.ts removeBarePrivateArea).
 */
export type Place = 'migrationFolder' | 'inMigrationFolder' | 'previousImages' | 'shared' | 'removable';

const dumpFields = {
  imageDir: 'inMigrationFolder',
  workDir: 'inMigrationFolder',
  prevImageDir: 'previousImages',
} as const;
const preflightFields = { imageDir: 'migrationFolder', sharedDisks: 'shared' } as const;
const diskFields = { ddxml: 'shared' } as const;

/**
 * Every path field of every agent step's arguments (schemas/json/steps.schema.json; a unit test checks this table
 * against the schemas). Steps not listed carry no path.
 */
export const pathFields: Partial<Record<StepName, Readonly<Record<string, Place>>>> = {
  preflightSource: preflightFields,
  preflightTarget: preflightFields,
  preDump: dumpFields,
  finalDump: dumpFields,
  restore: { imageDir: 'inMigrationFolder', workDir: 'inMigrationFolder' },
  backupDescriptor: diskFields,
  snapshotOrigin: diskFields,
  snapshotCopy: diskFields,
  restoreSharedDisk: diskFields,
  cleanupSharedDisk: diskFields,
  mergeOrigin: diskFields,
  removeFiles: { paths: 'removable' },
};

export type Resolved = { ok: true; path: string } | { ok: false; why: string };

/**
 * The path the kernel would reach: the realpath of its deepest existing ancestor, then the rest (which does not
 * exist, so holds no symlink). `.` and `..` segments are refused before anything is resolved: haul never sends
 * them, and resolving `..` lexically before the symlinks would check another path than the one the kernel opens.
 * With `followLast` false the last component is kept as it is (a removal removes a link, not what it points to).
 */
export function resolveOnHost(path: string, followLast = true): Resolved {
  if (!path.startsWith('/')) return { ok: false, why: 'is not an absolute path' };
  const parts = path.split('/').filter((s) => s !== '');
  if (parts.some((s) => s === '.' || s === '..')) return { ok: false, why: 'has a . or .. segment' };
  if (!followLast && parts.length > 0) {
    const parent = resolveOnHost(`/${parts.slice(0, -1).join('/')}`);
    return parent.ok ? { ok: true, path: join(parent.path, parts[parts.length - 1]!) } : parent;
  }
  for (let i = parts.length; i >= 0; i--) {
    const head = `/${parts.slice(0, i).join('/')}`;
    try {
      lstatSync(head);
    } catch {
      continue; // not there (or below a file): the kernel would not get further either
    }
    try {
      return { ok: true, path: join(realpathSync.native(head), ...parts.slice(i)) };
    } catch {
      return { ok: false, why: `${head} is a dangling or looping symlink` };
    }
  }
  return { ok: false, why: 'cannot be resolved' };
}

const below = (path: string, root: string): boolean => path.startsWith(root === '/' ? '/' : `${root}/`);

/** What the check needs besides the command: the node's bounds, the migration's log, the CTs' private areas. */
export type ConfineInput = {
  bounds: HostBounds;
  /** The migration's log as read before the step. */
  events: readonly MigrationEvent[];
  /** VE_PRIVATE of a CT as its config on this host says; undefined without a config. */
  privateArea(ctid: string): string | undefined;
};

export type Confined = { ok: true; command: StepCommand } | { ok: false; error: ErrorInfo };

const refused = (field: string, message: string, code: string = errorCodes.pathOutsideRoots): Confined => ({
  ok: false,
  error: { code, message: `${field} ${message}`, field },
});

/** Did the coordinator record this exact command (same id, node and arguments) in the migration's log? */
const intended = (cmd: StepCommand, events: readonly MigrationEvent[]): boolean =>
  events.some(
    (e) =>
      e.type === 'StepIntended' &&
      e.data.commandId === cmd.commandId &&
      e.data.node === cmd.node &&
      isDeepStrictEqual(e.data.args, cmd.args),
  );

const ctidOf = (events: readonly MigrationEvent[]): string | undefined => {
  const req = events.find((e) => e.type === 'MigrationRequested');
  return req?.type === 'MigrationRequested' ? req.data.request.ctid : undefined;
};

/** One path against its place: its resolved form, or why it is refused (a sentence after the field's name). */
function place(
  cmd: StepCommand,
  where: Place,
  value: string,
  resolvedArgs: Record<string, unknown>,
  input: ConfineInput,
): Resolved {
  const root = resolveOnHost(input.bounds.imageRoot);
  if (!root.ok) return { ok: false, why: `cannot be checked: the image root ${root.why}` };
  const folder = join(root.path, imageDirName(cmd.migrationId));
  if (where === 'previousImages') {
    const n = /^\.\.\/([0-9]+)$/.exec(value)?.[1];
    const imageDir = resolvedArgs['imageDir'];
    if (n === undefined || typeof imageDir !== 'string') return { ok: false, why: 'is not ../<n>' };
    const r = resolveOnHost(join(dirname(imageDir), n));
    if (!r.ok) return r;
    return below(r.path, folder) ? { ok: true, path: value } : outside(r.path, folder);
  }
  const r = resolveOnHost(value, where !== 'removable');
  if (!r.ok) return r;
  switch (where) {
    case 'migrationFolder':
      return r.path === folder ? r : outside(r.path, `the migration's image folder ${folder} itself`);
    case 'inMigrationFolder':
      return below(r.path, folder) ? r : outside(r.path, folder);
    case 'shared': {
      const roots = input.bounds.sharedRoots.map((s) => resolveOnHost(s)).filter((s) => s.ok);
      return roots.some((s) => below(r.path, s.path))
        ? r
        : outside(r.path, `every shared root (${input.bounds.sharedRoots.join(', ') || 'none configured'})`);
    }
    case 'removable':
      return removable(cmd, r.path, folder, input);
  }
}

function removable(cmd: StepCommand, path: string, folder: string, input: ConfineInput): Resolved {
  if (path === folder) return { ok: true, path };
  const ctid = ctidOf(input.events);
  const vp = ctid === undefined ? undefined : input.privateArea(ctid);
  const area = vp ? resolveOnHost(vp) : undefined;
  if (area?.ok && below(path, area.path) && intended(cmd, input.events)) return { ok: true, path };
  return {
    ok: false,
    why:
      `resolves to ${path}: neither the migration's image folder ${folder} nor a folder in the private area of ` +
      `the migration's CT (${vp ?? 'unknown'}) that its log intends to remove`,
  };
}

const outside = (path: string, where: string): Resolved => ({
  ok: false,
  why: `resolves to ${path}, outside ${where}`,
});

/**
 * Check a command against this host's roots and bounds. Refused: the first field that breaks them, by its name
 * (`args.imageDir`, `args.paths.0`). Allowed: the command with its paths resolved.
 */
export function confineCommand(cmd: StepCommand, input: ConfineInput): Confined {
  const args = { ...(cmd.args as unknown as Record<string, unknown>) };
  for (const [key, where] of Object.entries(pathFields[cmd.step] ?? {})) {
    const value = args[key];
    if (value === undefined) continue;
    const items = Array.isArray(value) ? (value as unknown[]) : [value];
    const out: string[] = [];
    for (const [i, item] of items.entries()) {
      const field = Array.isArray(value) ? `args.${key}.${i}` : `args.${key}`;
      if (typeof item !== 'string') return refused(field, 'is not a path');
      const r = place(cmd, where, item, args, input);
      if (!r.ok) return refused(field, `${JSON.stringify(item)} ${r.why}`);
      out.push(r.path);
    }
    args[key] = Array.isArray(value) ? out : out[0];
  }
  const lease = args['leaseMs'];
  if (cmd.step === 'finalDump' && typeof lease === 'number' && lease > input.bounds.maxLeaseMs)
    return refused(
      'args.leaseMs',
      `${lease} is longer than this node's cap of ${input.bounds.maxLeaseMs} ms (HAUL_MAX_LEASE_MS)`,
      errorCodes.leaseTooLong,
    );
  return { ok: true, command: { ...cmd, args } as StepCommand };
}
