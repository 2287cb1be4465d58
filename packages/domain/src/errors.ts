/** A command the migration core refuses in the current state; the code is stable and goes on the wire. */
export class CommandRejectedError extends Error {
  readonly code: string;
  readonly field: string | undefined;
  constructor(code: string, message: string, field?: string) {
    super(message);
    this.name = 'CommandRejectedError';
    this.code = code;
    this.field = field;
  }
}
