import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * The root logger of a process: JSON lines by default; human-readable only when HAUL_LOG_PRETTY=1 asks for it.
 * Everything else receives `logger.child({ migrationId, step, ... })` through its dependencies.
 */
export function createLogger(service: string, node?: string, env: NodeJS.ProcessEnv = process.env): Logger {
  const base = node ? { service, node } : { service };
  const level = env['HAUL_LOG_LEVEL'] ?? 'info';
  if (env['HAUL_LOG_PRETTY'] === '1') {
    return pino({
      level,
      base,
      transport: { target: 'pino-pretty', options: { colorize: true, destination: 2 } },
    });
  }
  return pino({ level, base }, pino.destination(env['HAUL_LOG_FD'] === '1' ? 1 : 2));
}

/** One child logger per migration, carrying its id. */
export function migrationLogger(
  root: Logger,
  migrationId: string,
  extra: Record<string, unknown> = {},
): Logger {
  return root.child({ migrationId, ...extra });
}
