import { accessSync, constants } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ConfigSchemaName } from '@haul/schemas';
import {
  BusConfigError,
  busConfigOf,
  connectionOptions,
  type BusConfig,
  type ConnectionSettings,
} from '../connection.ts';
import type { Logger } from '../logger.ts';
import { TrustConfigError } from '../trust/registry.ts';
import { trustFrom, type Expected, type Trust, type TrustSettings } from '../trust/trust.ts';
import { ConfigError, loadSettings, whereIs, type LoadedSettings } from './load.ts';
import { renderEffective, renderServiceHelp } from './render.ts';
import { settingsOf } from './spec.ts';

/** The exit code of a service that cannot start with its settings (docs/install.md; systemd does not restart it). */
export const badSettingsExit = 2;

export type ServiceSettings<T> = {
  settings: T;
  loaded: LoadedSettings<T>;
  /** `--check-config`: run the checks that need no network, then `checked()`. */
  checkOnly: boolean;
  /** A setting the service found wrong after loading (a file it names, a range): print where it is, exit 2. */
  fail(field: string, message: string): never;
  /** With --check-config: print the effective settings and exit 0; otherwise nothing. */
  checked(): void;
};

function usage(binary: string, message: string): never {
  console.error(`${binary}: ${message} (--help lists the options)`);
  process.exit(badSettingsExit);
}

/**
 * A service binary's start: `--help`, `--config FILE`, `--check-config`, then its settings (file, environment,
 * defaults) validated against its schema. Any bad setting prints the field and where it was set, and exits 2.
 */
export function serviceSettings<T>(o: {
  schema: ConfigSchemaName;
  binary: string;
  summary: string;
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}): ServiceSettings<T> {
  let values: { config?: string; 'check-config'?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: o.argv ?? process.argv.slice(2),
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        'check-config': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    usage(o.binary, (err as Error).message);
  }
  if (values.help) {
    console.log(renderServiceHelp(o));
    process.exit(0);
  }
  let loaded: LoadedSettings<T>;
  try {
    loaded = loadSettings<T>({
      schema: o.schema,
      env: o.env ?? process.env,
      ...(values.config !== undefined ? { file: values.config } : {}),
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`${o.binary}: ${err.message}`);
    process.exit(badSettingsExit);
  }
  const checkOnly = values['check-config'] === true;
  return {
    settings: loaded.values,
    loaded,
    checkOnly,
    fail(field, message) {
      console.error(`${o.binary}: ${whereIs(loaded, field)}: ${message}`);
      process.exit(badSettingsExit);
    },
    checked() {
      if (!checkOnly) return;
      const from = loaded.file ? ` (config file ${loaded.file})` : ' (no config file)';
      console.log(`${o.binary}: the settings are valid${from}\n${renderEffective(loaded)}`);
      process.exit(0);
    },
  };
}

/** A service's trust from its settings, or exit 2 naming the setting (the registry, the key, or who it belongs to). */
export function serviceTrust<T extends TrustSettings>(
  start: ServiceSettings<T>,
  expected: Expected,
  log: Logger,
): Trust {
  try {
    return trustFrom(start.settings, expected, log);
  } catch (err) {
    if (!(err instanceof TrustConfigError)) throw err;
    const key = settingsOf(start.loaded.schema).find((s) => s.env === err.field)?.key ?? err.field;
    start.fail(key, err.message.slice(err.field.length + 2));
  }
}

/** A file a setting names must be readable by this service (checked at start, before anything connects). */
export function readableOrFail(
  start: ServiceSettings<unknown>,
  field: string,
  file: string | undefined,
): void {
  if (file === undefined) return;
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    start.fail(
      field,
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/**
 * A service's bus configuration from its settings, checked without connecting: one identity file is set, it holds
 * a seed (a .creds file a JWT too), the TLS files are readable. A bad one exits 2 naming it.
 */
export function serviceConnection<T extends ConnectionSettings>(
  start: ServiceSettings<T>,
  name: string,
): BusConfig {
  const s = start.settings;
  let cfg: BusConfig;
  try {
    cfg = busConfigOf(name, s);
  } catch (err) {
    if (!(err instanceof BusConfigError)) throw err;
    start.fail('credsFile', err.message);
  }
  if (s.insecure) return cfg;
  readableOrFail(start, 'nats.tls.caFile', s.nats.tls?.caFile);
  readableOrFail(start, 'nats.tls.certFile', s.nats.tls?.certFile);
  readableOrFail(start, 'nats.tls.keyFile', s.nats.tls?.keyFile);
  try {
    connectionOptions(cfg);
  } catch (err) {
    if (!(err instanceof BusConfigError)) throw err;
    start.fail(cfg.identity?.setting ?? 'nkeySeedFile', err.message);
  }
  return cfg;
}
