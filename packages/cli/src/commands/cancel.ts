import { jsonFlag, migrationIdArg, type Command } from '../command.ts';

export const cancel: Command = {
  name: 'cancel',
  summary: 'roll a migration back (refused from the commit on)',
  description: `Ask the coordinator to cancel a migration (haul.api.cancel): before the commit point it rolls back and the CT
keeps running on the source; once the commit is under way (the target's restore has started, or in restart mode the
CT is being started on the target) and after it, the request is refused (HAUL_CANCEL_TOO_LATE) and the migration
rolls forward. Prints the phase once the cancel is recorded; follow it with haul events -f --migration ID.`,
  positionals: [migrationIdArg],
  flags: {
    reason: { kind: 'string', value: 'TEXT', help: 'why (recorded in the log)' },
    ...jsonFlag,
  },
  examples: ['haul cancel m-3f9a04c1d2b7e8a90c1d2e3f --reason "maintenance window closed"'],
  exits: ['completed', 'rejected', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const id = ctx.args.positionals[0]!;
    const r = await (await ctx.api()).cancel(id, ctx.args.str('reason'));
    if (!r.ok) {
      ctx.say(`haul: cancel refused: ${r.error.code}: ${r.error.message}`);
      return 'rejected';
    }
    if (ctx.json) ctx.out.json(r.status);
    else ctx.out.line(`${id}: ${r.status?.phase ?? 'cancelling'}`);
    return 'completed';
  },
};
