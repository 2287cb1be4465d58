/**
 * The one registry of the CLI's exit codes: one per outcome a script may branch on. docs/cli.md lists them (a unit
 * test checks that every code is distinct and documented there); `haul CMD --help` shows those a command can end
 * with. 2 for a usage error as the services and scripts/build.mjs already do; sysexits.h and timeout(1) where
 * their meaning fits; small numbers for the migration outcomes. bin/haul.mjs exits with `usage` when the bundle is
 * missing (it cannot import this file then: the number is written there, and test/cli-install.int.test.ts checks it).
 */
export const exitCodes = {
  completed: { code: 0, summary: 'done (migrate: the migration completed)' },
  error: { code: 1, summary: 'failed for another reason (the message on stderr says which)' },
  usage: {
    code: 2,
    summary:
      'usage error: unknown command or flag, missing or bad value, or a setting NATS refuses (identity, certificate); nothing was sent',
  },
  rolledBack: {
    code: 3,
    summary: 'the migration rolled back after it had started: the CT runs on the source',
  },
  rejected: {
    code: 4,
    summary:
      'refused before anything changed: by the API (its HAUL_… code on stderr), by preflight, or by NATS (an identity without the permission)',
  },
  stuck: {
    code: 5,
    summary: 'the migration is stuck: an action failed on every attempt; it waits for an operator',
  },
  overBudget: {
    code: 6,
    summary: 'the migration completed, but its downtime exceeded the budget (--max-downtime-ms)',
  },
  natsUnreachable: { code: 69, summary: 'cannot reach NATS (sysexits EX_UNAVAILABLE)' },
  opensslFailed: {
    code: 70,
    summary:
      'init-cluster: openssl, which makes the certificates, is missing or failed (sysexits EX_SOFTWARE)',
  },
  outputNotEmpty: {
    code: 73,
    summary:
      'init-cluster: the output folder exists and is not empty; --force writes into it (sysexits EX_CANTCREAT)',
  },
  noCoordinator: {
    code: 75,
    summary: 'NATS is up, no coordinator answers on haul.api.* (sysexits EX_TEMPFAIL: try later)',
  },
  timeout: {
    code: 124,
    summary: 'gave up waiting (--timeout, or no API reply in time); the migration goes on',
  },
  interrupted: { code: 130, summary: 'interrupted by Ctrl-C (SIGINT, 128 + 2); the migration goes on' },
} as const satisfies Record<string, { code: number; summary: string }>;

export type ExitName = keyof typeof exitCodes;

export const exitCode = (name: ExitName): number => exitCodes[name].code;
