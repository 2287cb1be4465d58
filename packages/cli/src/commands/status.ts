import { jsonFlag, migrationIdArg, type Command } from '../command.ts';
import { formatStats } from '../format.ts';
import { knownStatus, stuckLine, whoAskedLines } from '../operator.ts';

export const status: Command = {
  name: 'status',
  summary: "one migration's current phase, steps and stats",
  description: `Ask the coordinator for one migration's status (haul.api.status): phase, iteration, who asked for it
and why, who cancelled, retried or resolved it and why, running steps, why it rolled back or what it is
stuck on and what to do about it, and the stats once it has ended.`,
  positionals: [migrationIdArg],
  flags: { ...jsonFlag },
  examples: [
    'haul status m-3f9a04c1d2b7e8a90c1d2e3f',
    'haul status m-3f9a04c1d2b7e8a90c1d2e3f --json | jq .phase',
  ],
  exits: ['completed', 'rejected', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const id = ctx.args.positionals[0]!;
    const r = await knownStatus(ctx, id);
    if (!r) return 'rejected';
    const s = r.status!;
    if (ctx.json) {
      ctx.out.json(s);
      return 'completed';
    }
    ctx.out.line(
      `${s.migrationId}  CT ${s.ctid}  ${s.source} → ${s.target}  ${s.mode}  ${s.phase}  iteration ${s.iteration}${s.reason ? `  (${s.reason})` : ''}`,
    );
    for (const l of whoAskedLines(s)) ctx.out.line(l);
    if (s.runningSteps?.length) ctx.out.line(`running: ${s.runningSteps.join(', ')}`);
    for (const l of s.stuck ? stuckLine(s).split('\n') : []) ctx.out.line(l);
    for (const l of s.stats ? formatStats(s.stats).split('\n') : []) ctx.out.line(l);
    return 'completed';
  },
};
