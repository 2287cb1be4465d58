import { setTimeout as delay } from 'node:timers/promises';
import { join } from 'node:path';
import { mayResumeSource, mayStartRestore } from '@haul/domain';
import type { DumpResult, HostResult, PreflightArgs, PreflightResult, StepName } from '@haul/schemas';
import { argsOf, StepError, type Handler, type HandlerTable } from './context.ts';
import type { HostFacts } from './capabilities.ts';
import type { AgentHost } from './host.ts';

/** Steps the agent runs (the streaming steps are the image streamer's). */
const agentSteps: StepName[] = [
  'preflightSource',
  'preflightTarget',
  'preDump',
  'finalDump',
  'releaseSource',
  'resumeSource',
  'backupDescriptor',
  'snapshotOrigin',
  'snapshotCopy',
  'restoreSharedDisk',
  'cleanupSharedDisk',
  'mergeOrigin',
  'restore',
  'stopSource',
  'stopTarget',
  'startTarget',
  'startSource',
  'umountSource',
  'removeFiles',
  'lockSource',
  'unlockSource',
  'takeOwnership',
  'releaseOwnership',
];

const facts: HostFacts = { criuVersion: '3.17', memTrack: true, cpuFlags: [] };

/**
 * A host that does no host work: every step answers after `delayMs` with a result a healthy host would give (the
 * CT runs on the source, has a local root disk and the request's shared disks, a pre-dump writes few pages so the
 * first iteration converges). The fences stay real: restore and resume append RestoreStarted / ResumedOnSource
 * through the agent's compare-and-set as on a real host. For measuring the control plane (npm run bench:control).
 */
export function createNullHost(delayMs: number): AgentHost {
  const answer =
    (result: Handler): Handler =>
    async (cmd, ctx) => {
      await delay(delayMs);
      return result(cmd, ctx);
    };
  const done: Handler = () => Promise.resolve({ actions: ['nothing done: null host'] } satisfies HostResult);
  const handlers: HandlerTable = Object.fromEntries(agentSteps.map((s) => [s, answer(done)]));
  handlers.preflightSource = answer(preflight);
  handlers.preflightTarget = answer(preflight);
  handlers.preDump = answer(dumped);
  handlers.finalDump = answer(dumped);
  handlers.restore = answer(async (cmd, ctx) => {
    const started = ctx.event(
      'RestoreStarted',
      { commandId: cmd.commandId },
      `${cmd.commandId}:restore-started`,
    );
    const v = await ctx.fencedAppend(started, (events, again) =>
      mayStartRestore(events, { bootId: ctx.cfg.bootId, commandId: cmd.commandId }, again),
    );
    if (!v.ok) throw new StepError(v.code, v.reason);
    return { actions: ['restored (null host)'] } satisfies HostResult;
  });
  handlers.resumeSource = answer(async (cmd, ctx) => {
    const ev = ctx.event(
      'ResumedOnSource',
      { reason: 'rollback', commandId: cmd.commandId },
      `${cmd.migrationId}:resumed-on-source`,
    );
    const v = await ctx.fencedAppend(ev, mayResumeSource);
    if (!v.ok) throw new StepError(v.code, v.reason);
    return { actions: ['resumed (null host)'] } satisfies HostResult;
  });
  return { handlers, facts: () => Promise.resolve(facts), privateArea: nullPrivateArea };
}

/** Where the null host says a CT's private area is (it is never touched). */
const nullPrivateArea = (ctid: string): string => `/vz/private/${ctid}`;

const preflight: Handler = (cmd, ctx) => {
  const a = argsOf<PreflightArgs>(cmd);
  const vePrivate = nullPrivateArea(a.ctid);
  const result: PreflightResult = {
    configPresent: true,
    running: cmd.step === 'preflightSource',
    criuVersion: facts.criuVersion,
    memTrack: facts.memTrack,
    cpuFlags: facts.cpuFlags,
    imageDir: a.imageDir,
    vePrivate,
    disks: [
      { ddxml: join(vePrivate, 'root.hdd', 'DiskDescriptor.xml'), shared: false, location: 'private' },
      ...nullSharedDisks(a.ctid),
    ],
    freeBytes: 1e12,
    bootId: ctx.cfg.bootId,
  };
  return Promise.resolve(result);
};

/**
 * The null host's shared disks, found as an agent finds them: a CT with an even id has one below /shared, the same
 * on every node (bench/lib/control-load.ts declares exactly these).
 */
const nullSharedDisks = (ctid: string): PreflightResult['disks'] =>
  Number(ctid) % 2 === 0
    ? [
        {
          ddxml: `/shared/ct${ctid}/DiskDescriptor.xml`,
          shared: true,
          location: 'shared',
          sharedRoot: '/shared',
          descriptorSha256: '0'.repeat(64),
        },
      ]
    : [];

const dumped: Handler = () =>
  Promise.resolve({ pagesWritten: 16, bytes: 16 * 4096, durationMs: 1 } satisfies DumpResult);
