import { existsSync, lstatSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorCodes } from '@haul/domain';
import type { CtArgs, HostResult } from '@haul/schemas';
import { replaceFile } from '../adapters/files.ts';
import { toolOnPath } from '../adapters/tools.ts';
import { readCtConfig, readLockDir } from '../adapters/vz-config.ts';
import { ctLockFile, heldBy, releaseCtLock, takeCtLock } from '../ct-lock.ts';
import { argsOf, etcVz, StepError, type Handler, type HandlerContext } from '../context.ts';

/*
 * The CT lock and the handover of ownership (docs/protocol.md, "Ownership and the CT lock"). Each step inspects the
 * host first and is safe to repeat.
 */

const lockFileOf = (ctx: HandlerContext, ctid: string) => ctLockFile(readLockDir(etcVz(ctx.cfg)), ctid);

/** Take the CT's vzctl lock for this migration, or fail (HAUL_CT_LOCKED) when another live process holds it. */
export const lockSource: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const file = lockFileOf(ctx, ctid);
  if (heldBy(file, cmd.migrationId))
    return { actions: ['CT lock already held by this migration'], path: file };
  const r = await takeCtLock(file, cmd.migrationId);
  if (!r.held)
    throw new StepError(
      errorCodes.ctLocked,
      `CT ${ctid} is locked on ${ctx.cfg.node}${r.by ? ` by pid ${r.by}` : ''} (${file}): another vzctl or migration acts on it`,
    );
  return { actions: [`CT lock ${file} taken (status migrating)`], path: file } satisfies HostResult;
};

/** Release the lock if this migration holds it (a lock in doubt may be someone else's: then it is left alone). */
export const unlockSource: Handler = (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  return Promise.resolve({
    actions: [releaseCtLock(lockFileOf(ctx, ctid), cmd.migrationId)],
  } satisfies HostResult);
};

const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/**
 * On the target, once the CT runs there (after the commit point), in vzmigrate's order (bin/migratedst.cpp
 * finalStage): the HA resource to this node first (registerOnHaCluster; with libvzctl's `shaman -i add … --force`),
 * then the registration (VEObj::veRegister): the config the CT was restored with becomes $VE_PRIVATE/ve.conf, and
 * `vzctl register --force` writes `.owner` and links /etc/vz/conf/<ctid>.conf to it.
 */
export const takeOwnership: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const conf = readCtConfig(etcVz(ctx.cfg), ctid);
  const priv = (conf?.['VE_PRIVATE'] ?? '').replace(/\$\{VEID\}|\$VEID/g, ctid);
  if (!conf || !priv) throw new StepError(errorCodes.noConfig, `CT ${ctid} has no config on ${ctx.cfg.node}`);
  const r: HostResult = { actions: [] };
  const etc = join(etcVz(ctx.cfg), 'conf', `${ctid}.conf`);
  if (!isLink(etc)) {
    replaceFile(join(priv, 've.conf'), readFileSync(etc, 'utf8'), 0o644);
    r.actions.push(`config written to ${priv}/ve.conf`);
  }
  if ((conf['HA_ENABLE'] ?? 'yes') !== 'no' && toolOnPath('shaman')) {
    await ctx.tools.shamanAdd(ctid, conf['HA_PRIO'] || '0', priv);
    r.actions.push(`HA resource ct-${ctid} moved to ${ctx.cfg.node}`);
  }
  await ctx.tools.vzctlRegister(priv, ctid);
  r.actions.push(`registered and owned on ${ctx.cfg.node}`);
  return r;
};

/**
 * On the source, in the cleanup (the CT runs on the target, which owns it): `vzctl unregister` removes `.owner` and
 * the registration link (libvzctl vzctl2_env_unreg; the HA resource already moved). An unregistered copy of the config
 * is left in /etc/vz/conf, as haul found it on the target: this node may take the CT back one day (a target's
 * preflight needs the CT's config), and an unregistered config is not an owner. The rest of the cleanup needs it
 * too: the agent finds the CT's private area there, which bounds the source disks it may remove.
 *
 * Crash-safe in three moves: the config's body is kept beside the link (`<ctid>.conf.haul-unregistered`) before
 * `vzctl unregister`, and renamed over the link's place after it. A repeat after a crash between the two finds no
 * link and the kept body, and finishes the rename; without the kept body the config would be gone for good.
 */
export const releaseOwnership: Handler = async (cmd, ctx) => {
  const { ctid } = argsOf<CtArgs>(cmd);
  const etc = join(etcVz(ctx.cfg), 'conf', `${ctid}.conf`);
  const kept = `${etc}.haul-unregistered`;
  const actions: string[] = [];
  if (isLink(etc)) {
    replaceFile(kept, readFileSync(etc, 'utf8'), 0o644);
    await ctx.tools.vzctlUnregister(ctid);
    actions.push('unregistered');
  }
  if (existsSync(kept) && !existsSync(etc)) {
    renameSync(kept, etc);
    actions.push('an unregistered config kept');
  }
  rmSync(kept, { force: true });
  return { actions: actions.length > 0 ? actions : ['not registered here'] } satisfies HostResult;
};
