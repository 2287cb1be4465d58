import { jsonFlag, migrationIdArg, type Command } from '../command.ts';
import { operatorReply } from '../operator.ts';

export const retry: Command = {
  name: 'retry',
  summary: 'a stuck migration: try its stuck action again (after fixing its cause)',
  description: `For a migration in phase stuck (an action of its rollback, release or cleanup failed on every attempt): you
fixed the cause, and the stuck action gets a fresh set of attempts (haul.api.retry; docs/protocol.md,
"Stuck migrations").`,
  positionals: [migrationIdArg],
  flags: {
    reason: { kind: 'string', value: 'TEXT', help: 'what you fixed (recorded in the log)' },
    ...jsonFlag,
  },
  examples: ['haul retry m-3f9a04c1d2b7e8a90c1d2e3f --reason "disk 0 repaired"'],
  exits: ['completed', 'rejected', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const id = ctx.args.positionals[0]!;
    return operatorReply(ctx, 'retry', id, await (await ctx.api()).retry(id, ctx.args.str('reason')));
  },
};
