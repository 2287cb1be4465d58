import { jsonFlag, migrationIdArg, type Command } from '../command.ts';
import { operatorReply } from '../operator.ts';

export const resolve: Command = {
  name: 'resolve',
  summary: 'a stuck migration: you did its stuck action by hand; the plan moves on',
  description: `For a migration in phase stuck: you did the stuck action by hand (its key as haul status shows it), it counts
as done and the plan moves on (haul.api.resolve). Compensations and cleanup only; haul does nothing to a
host. What each action means done by hand: docs/protocol.md, "Stuck migrations".`,
  positionals: [migrationIdArg],
  flags: {
    action: {
      kind: 'string',
      value: 'KEY',
      help: 'the stuck action, as haul status shows it (e.g. mergeOrigin:1)',
      required: true,
    },
    reason: { kind: 'string', value: 'TEXT', help: 'what you did (recorded in the log)' },
    'target-idle': {
      kind: 'boolean',
      help:
        "for stopTarget after the target's restore (or start) was given up: you checked that nothing of the migration " +
        'runs on the target any more (its vzctl has ended, or the host is down); a stopped CT alone does not show it',
    },
    ...jsonFlag,
  },
  examples: ['haul resolve m-3f9a04c1d2b7e8a90c1d2e3f --action mergeOrigin:1 --reason "merged by hand"'],
  exits: ['completed', 'rejected', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const id = ctx.args.positionals[0]!;
    const api = await ctx.api();
    return operatorReply(
      ctx,
      'resolve',
      id,
      await api.resolve(id, ctx.args.str('action')!, ctx.args.str('reason'), {
        targetIdle: ctx.args.bool('target-idle'),
      }),
    );
  },
};
