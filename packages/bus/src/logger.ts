import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

/** How a process logs (a service's `log` settings). */
export type LogOptions = { level: string; pretty: boolean };

/**
 * The root logger of a process: JSON lines by default; human-readable only when HAUL_LOG_PRETTY=1 asks for it.
 * Everything else receives `logger.child({ migrationId, step, ... })` through its dependencies.
 */
export function createLogger(service: string, node?: string, env: NodeJS.ProcessEnv = process.env): Logger {
  return createLoggerWith(
    service,
    node,
    { level: env['HAUL_LOG_LEVEL'] ?? 'info', pretty: env['HAUL_LOG_PRETTY'] === '1' },
    env,
  );
}

/** A service's root logger from its settings (HAUL_LOG_FD=1, a test hook, moves it to stdout). */
export function createLoggerWith(
  service: string,
  node: string | undefined,
  o: LogOptions,
  env: NodeJS.ProcessEnv = process.env,
): Logger {
  const base = node ? { service, node } : { service };
  if (o.pretty) {
    // pino-pretty as a stream in this process (its README's "usage as a stream"), not a transport: a transport's
    // worker thread loads pino by path, which a bundle with pino inside cannot give it. Loaded only here, so a
    // service that logs JSON never loads it. Colours by its default (colorette: a terminal on stdout, no NO_COLOR).
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
    return pino({ level: o.level, base }, pretty({ destination: 2 }));
  }
  return pino({ level: o.level, base }, pino.destination(env['HAUL_LOG_FD'] === '1' ? 1 : 2));
}

/** One child logger per migration, carrying its id. */
export function migrationLogger(
  root: Logger,
  migrationId: string,
  extra: Record<string, unknown> = {},
): Logger {
  return root.child({ migrationId, ...extra });
}
