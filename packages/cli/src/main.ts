import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import {
  BusConfigError,
  busConfigFromEnv,
  connectBus,
  createEventLog,
  TrustConfigError,
  trustFromEnv,
  type EventLog,
} from '@haul/bus';
import pkg from '../../../package.json' with { type: 'json' };
import { closest, parseCommandLine } from './args.ts';
import { createApiClient, signerFromEnv, type ApiClient } from './client.ts';
import { commonFlags, type Command, type Context } from './command.ts';
import { commands } from './commands/index.ts';
import { envelopeValidators } from './envelope-validators.ts';
import { CliError, UsageError } from './errors.ts';
import { exitCode, type ExitName } from './exit-codes.ts';
import { commandHelp, helpWidth, overview } from './help.ts';
import { createOutput, type Output } from './output.ts';
import { initClusterMain, initFlags } from './init-cluster.ts';

/** The version of the installed package (bundled from package.json at build time). */
export const version: string = pkg.version;

export type Io = { out: Output; err: (s: string) => void; env: NodeJS.ProcessEnv };

const defaultIo = (): Io => ({
  out: createOutput(),
  err: (s) => void process.stderr.write(`${s}\n`),
  env: process.env,
});

/** Run the CLI on argv (without node and the script); resolves to the exit code. */
export async function main(argv: string[], io: Io = defaultIo()): Promise<number> {
  // Its own flags and help, and no connection: it makes what a connection needs.
  const at = commandIndex(argv);
  const word = argv[at];
  if (word === 'init-cluster' || (word === 'help' && argv[commandIndex(argv, at + 1)] === 'init-cluster'))
    return initClusterMain(
      word === 'help' ? ['--help'] : [...argv.slice(0, at), ...argv.slice(at + 1)],
      helpWidth(io.out.width),
    );
  try {
    return exitCode(await dispatch(argv, io));
  } catch (err) {
    return exitCode(report(err, io));
  }
}

async function dispatch(argv: string[], io: Io): Promise<ExitName> {
  const at = commandIndex(argv);
  if (at < 0) return noCommand(argv, io);
  const name = argv[at]!;
  const rest = [...argv.slice(0, at), ...argv.slice(at + 1)];
  if (name === 'help') return help(rest, io);
  const cmd = findCommand(name);
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out.text(commandHelp(cmd, helpWidth(io.out.width)));
    return 'completed';
  }
  const args = parseCommandLine(cmd.name, rest, { ...cmd.flags, ...commonFlags }, cmd.positionals);
  return runCommand(cmd, args, io);
}

/**
 * Where the command word is, from `from` on: the first word that is not a flag or a flag's value. Any command's flag
 * that takes a value may come before the command word (`haul --timeout 5s wait ID`).
 */
function commandIndex(argv: string[], from = 0): number {
  for (let i = from; i < argv.length; i++) {
    const a = argv[i]!;
    if (takesValue.has(a)) i++;
    else if (!a.startsWith('-')) return i;
  }
  return -1;
}

/** `--flag` of every flag of any command (init-cluster's too) that takes a value in the next word. */
const takesValue: ReadonlySet<string> = new Set(
  [commonFlags, initFlags, ...commands.map((c) => c.flags)].flatMap((flags) =>
    Object.entries(flags).flatMap(([name, f]) => (f.kind === 'boolean' ? [] : [`--${name}`])),
  ),
);

function noCommand(argv: string[], io: Io): ExitName {
  if (argv.includes('--version')) {
    io.out.line(version);
    return 'completed';
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out.text(overview(commands, version, helpWidth(io.out.width)));
    return 'completed';
  }
  const unknown = argv.find((a) => a.startsWith('-') && a !== '--nats');
  if (unknown) throw new UsageError(`unknown flag ${unknown} (haul takes --help, --version, or a command)`);
  io.err(overview(commands, version, helpWidth(io.out.width)));
  throw new UsageError('missing command');
}

function help(rest: string[], io: Io): ExitName {
  const name = rest[commandIndex(rest)];
  const width = helpWidth(io.out.width);
  io.out.text(name ? commandHelp(findCommand(name), width) : overview(commands, version, width));
  return 'completed';
}

function findCommand(name: string): Command {
  const cmd = commands.find((c) => c.name === name);
  if (cmd) return cmd;
  const near = closest(
    name,
    commands.map((c) => c.name),
  );
  throw new UsageError(`unknown command ${JSON.stringify(name)}${near ? ` (did you mean ${near}?)` : ''}`);
}

async function runCommand(cmd: Command, args: Context['args'], io: Io): Promise<ExitName> {
  const ac = new AbortController();
  // Ctrl-C stops a command that waits (it says so); a second one ends the process at once.
  const onSigint = () => (ac.signal.aborted ? process.exit(exitCode('interrupted')) : ac.abort());
  process.on('SIGINT', onSigint);
  const conn = lazyConnection(args.str('nats') ?? io.env['HAUL_NATS_URL'], io.env, cmd.runsUntilStopped);
  try {
    const ctx: Context = {
      args,
      out: io.out,
      say: io.err,
      json: args.bool('json'),
      signal: ac.signal,
      ...conn,
    };
    const outcome = await cmd.run(ctx);
    return ac.signal.aborted ? 'interrupted' : outcome;
  } finally {
    process.off('SIGINT', onSigint);
    await conn.close();
  }
}

/** NATS, the API client and the event log, each made on first use: help and usage errors never connect. */
function lazyConnection(servers: string | undefined, env: NodeJS.ProcessEnv, reconnect = false) {
  let ncP: Promise<NatsConnection> | undefined;
  let logP: Promise<EventLog> | undefined;
  let api: ApiClient | undefined;
  const nc = () =>
    (ncP ??= connectBus(
      { ...busConfigFromEnv('haul-cli', env), ...(servers ? { servers } : {}) },
      reconnect ? { timeout: 3000 } : { maxReconnectAttempts: 0, timeout: 3000 },
    ).catch((err: unknown) => {
      // NATS answered and refused this client's settings (its identity, its certificate): trying again will not
      // help, as with any bad setting (2); only a NATS that does not answer is worth waiting for (69).
      throw new CliError(
        err instanceof BusConfigError ? 'usage' : 'natsUnreachable',
        (err as Error).message,
        {
          cause: err,
        },
      );
    }));
  return {
    nc,
    api: async () => (api ??= createApiClient(await nc(), signerFromEnv(env))),
    // Events are shown only when believed: the registry (HAUL_IDENTITIES_FILE) is read when a command reads the log.
    log: () =>
      (logP ??= nc().then((c) => {
        const trust = trustFromEnv('reader', undefined, env);
        if (!trust.secure)
          process.stderr.write('haul: HAUL_INSECURE=1: events are shown without checking who wrote them\n');
        return createEventLog(c, envelopeValidators, trust);
      })),
    close: async () => {
      if (ncP) await ncP.then((c) => c.close()).catch(() => {});
    },
  };
}

/** One line on stderr for any failure (the stack only with HAUL_DEBUG=1), and the outcome to exit with. */
function report(err: unknown, io: Io): ExitName {
  if (err instanceof TrustConfigError) {
    io.err(`haul: ${err.message}`);
    return 'usage';
  }
  if (err instanceof UsageError) {
    io.err(`haul: ${err.message}`);
    io.err(`Run 'haul ${err.command ? `${err.command} ` : ''}--help' for usage.`);
    return 'usage';
  }
  if (io.env['HAUL_DEBUG']) io.err(String((err as Error).stack ?? err));
  if (err instanceof CliError) {
    io.err(`haul: ${err.message}`);
    return err.exit;
  }
  if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
    // The log, the node bucket and the others are made by the first coordinator to start: none ever ran here.
    io.err(
      `haul: ${err.message}: no coordinator has run on this NATS yet (the first one to start makes haul's streams and buckets)`,
    );
    return 'noCoordinator';
  }
  io.err(`haul: ${(err as Error).message ?? String(err)}`);
  return 'error';
}
