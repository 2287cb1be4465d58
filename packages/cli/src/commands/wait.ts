import { jsonFlag, migrationIdArg, timeoutFlag, type Command } from '../command.ts';
import { knownStatus } from '../operator.ts';
import { watchMigration } from '../watch.ts';

export const wait: Command = {
  name: 'wait',
  summary: 'wait until a migration ends and exit with its outcome (re-attach to it)',
  description: `Follow one migration until it completes, rolls back or gets stuck, with the live view of haul migrate
(its log from the start, then a status line), and exit with the code of its outcome. It ends at once for a
migration that already ended. This is how to re-attach after Ctrl-C or haul migrate --detach.`,
  positionals: [migrationIdArg],
  flags: { ...timeoutFlag, ...jsonFlag },
  examples: [
    'haul wait m-3f9a04c1d2b7e8a90c1d2e3f',
    'id=$(haul migrate --ct 101 --from node-a --to node-b --detach) && haul wait "$id" --timeout 10m',
    'haul wait m-3f9a04c1d2b7e8a90c1d2e3f --json | jq -r .type',
  ],
  exits: ['completed', 'overBudget', 'rolledBack', 'rejected', 'stuck', 'noCoordinator', 'timeout'],
  async run(ctx) {
    const id = ctx.args.positionals[0]!;
    // An id the coordinator does not know has no log to wait for: 4, as haul status says.
    if (!(await knownStatus(ctx, id))) return 'rejected';
    return watchMigration(ctx, id, ctx.args.ms('timeout'));
  },
};
