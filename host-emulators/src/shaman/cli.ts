import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../lib/atomic.ts';
import { ToolExit, emuEnv, type EmuEnv } from '../lib/emu-env.ts';
import { GetoptError, out, parseOpts } from '../lib/tool.ts';
import { shamanAdd, shamanGlobal, shamanUsage } from './options.ts';

/** An HA resource: which node runs it, and the CT's private area it restarts the CT from (cluster-wide). */
export type HaResource = { node: string; path: string; prio: number };

const resourceFile = (clusterDir: string, name: string) => join(clusterDir, 'shaman', `${name}.json`);

/** The resource as the cluster knows it (also read by `haul-emu ha-resource`). */
export function readResource(clusterDir: string, name: string): HaResource | undefined {
  const f = resourceFile(clusterDir, name);
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as HaResource) : undefined;
}

const usage = (why: string) => new ToolExit(1, why, [shamanUsage]);

function parse(table: typeof shamanGlobal, argv: string[]) {
  try {
    return parseOpts(table, argv);
  } catch (e) {
    if (e instanceof GetoptError) throw usage(`shaman: ${e.message}`);
    throw e;
  }
}

/** `shaman [-i] [-q] add|del|del-everywhere RESOURCE …`, `shaman info` (see options.ts for what it is based on). */
export function shamanMain(argv: string[]): number {
  // The global flags come before the command: parse up to the first word.
  const cmdAt = argv.findIndex((a) => !a.startsWith('-'));
  parse(shamanGlobal, cmdAt < 0 ? argv : argv.slice(0, cmdAt));
  const cmd = cmdAt < 0 ? undefined : argv[cmdAt];
  const rest = cmdAt < 0 ? [] : argv.slice(cmdAt + 1);
  const env = emuEnv();
  switch (cmd) {
    case 'info':
      if (rest.length > 0) throw usage(`shaman: excess argument ${rest[0]}`);
      out(`ID : ${env.node}`);
      return 0;
    case 'add':
      return add(env, rest);
    case 'del':
    case 'del-everywhere':
      return del(env, cmd, rest);
    default:
      throw usage(cmd === undefined ? 'shaman: no command' : `shaman: unknown command ${cmd}`);
  }
}

function oneResource(args: string[]): string {
  const [name, extra] = args;
  if (name === undefined) throw usage('shaman: a resource name is required');
  if (extra !== undefined) throw usage(`shaman: excess argument ${extra}`);
  if (!/^ct-[A-Za-z0-9_.-]+$/.test(name)) throw usage(`shaman: invalid resource name ${name}`);
  return name;
}

/** add: the resource is registered to this node; with --force over an existing one (wherever it was). */
function add(env: EmuEnv, argv: string[]): number {
  const { opts, args } = parse(shamanAdd, argv);
  const name = oneResource(args);
  const prev = readResource(env.clusterDir, name);
  if (prev && !opts.has('--force')) throw new ToolExit(2, `shaman: resource ${name} already exists`);
  const prio = Number(opts.get('--prio')?.at(-1) ?? prev?.prio ?? 0);
  if (!Number.isInteger(prio) || prio < 0) throw usage('shaman: --prio takes a whole number');
  const path = opts.get('--path')?.at(-1) ?? prev?.path;
  if (!path) throw usage('shaman: --path is required for a new resource');
  mkdirSync(join(env.clusterDir, 'shaman'), { recursive: true });
  writeFileAtomic(resourceFile(env.clusterDir, name), JSON.stringify({ node: env.node, path, prio }));
  out(`resource ${name} registered on ${env.node}`);
  return 0;
}

/** del: only the node that runs the resource removes it; del-everywhere removes it wherever it is. */
function del(env: EmuEnv, cmd: string, argv: string[]): number {
  const name = oneResource(argv);
  const prev = readResource(env.clusterDir, name);
  if (!prev) throw new ToolExit(1, `shaman: resource ${name} not found`);
  if (cmd === 'del' && prev.node !== env.node)
    throw new ToolExit(1, `shaman: resource ${name} belongs to ${prev.node}`);
  rmSync(resourceFile(env.clusterDir, name), { force: true });
  out(`resource ${name} removed`);
  return 0;
}
