import type { ExitName } from './exit-codes.ts';

/** A failure the CLI reports with a one-line message (no stack trace) and the exit code of its outcome. */
export class CliError extends Error {
  readonly exit: ExitName;
  constructor(exit: ExitName, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CliError';
    this.exit = exit;
  }
}

/** The command line is wrong: nothing was sent. The message says what, and what was probably meant. */
export class UsageError extends CliError {
  /** The command whose usage to point at (`haul CMD --help`), if one was recognised. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super('usage', message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** NATS answered, but nobody serves the scheduler API (a "no responders" status). */
export class NoCoordinatorError extends CliError {
  constructor(subject: string, options?: ErrorOptions) {
    super('noCoordinator', `no coordinator is answering on ${subject} (is one running?)`, options);
    this.name = 'NoCoordinatorError';
  }
}

/** Waiting ran out: an API request unanswered in time, or `--timeout`. */
export class WaitTimeoutError extends CliError {
  constructor(message: string, options?: ErrorOptions) {
    super('timeout', message, options);
    this.name = 'WaitTimeoutError';
  }
}
