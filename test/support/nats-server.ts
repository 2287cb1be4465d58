import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { casSafe } from '@haul/bus';
import { repoRoot } from './paths.ts';
import { forget, reapOnExit, removeOnExit } from './reaper.ts';

export type NatsServer = {
  url: string;
  port: number;
  pid: number;
  storeDir: string;
  /** Stop by PID (SIGTERM, then SIGKILL), remove the store dir. */
  stop(): Promise<void>;
  /** Kill by PID without cleanup, for failure tests; `restart()` brings it back on the same port and store. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  restart(): Promise<void>;
};

/**
 * The nats-server releases haul is tested on. `installed`: the machine's (Debian 12's is 2.9; a PATH entry first, so
 * `PATH=/other/release:$PATH` runs every test of one server on another; a cluster runs on natsClusterRelease()). `newer`: Debian trixie's (2.10), where JetStream's API
 * changed. `current`: Debian sid's, the newest Debian has (2.15.1 when this was written), where an append's expected
 * sequence is checked before its message id. `scripts/bootstrap.sh --tests` fetches the two. A test that depends on a
 * difference asks the server its version (natsAtLeast).
 */
export type NatsRelease = 'installed' | 'newer' | 'current';
export const natsReleases: readonly NatsRelease[] = ['installed', 'newer', 'current'];
/** The Debian suite each fetched release comes from; bootstrap puts it in node_modules/.cache/haul/nats-server-<release>. */
const fetchedFrom = { newer: 'trixie', current: 'sid' } as const;

/** Whether a server's version (its INFO's `version`, e.g. "2.10.27") is `major.minor` or later. */
export function natsAtLeast(version: string | undefined, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)\./.exec(version ?? '');
  if (!m) throw new Error(`not a nats-server version: ${String(version)}`);
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

const versions = new Map<NatsRelease, string>();
/** A release's version, as its binary says it (`nats-server --version`: "nats-server: v2.9.10"): "2.9.10". */
export function natsVersion(release: NatsRelease): string {
  let v = versions.get(release);
  if (v === undefined) {
    const out = execFileSync(natsServerBinary(release), ['--version'], { encoding: 'utf8' });
    v = /v?(\d+\.\d+\.\d+)/.exec(out)?.[1];
    if (v === undefined)
      throw new Error(`${natsServerBinary(release)} --version said ${JSON.stringify(out)}`);
    versions.set(release, v);
  }
  return v;
}

/**
 * The releases haul runs replicated streams on (casSafe: Debian 12's 2.9.10 is refused there), of those it is tested
 * on. A test of three servers with haul's streams runs on these.
 */
export const natsClusterReleases = (): NatsRelease[] =>
  natsReleases.filter(
    (r) => (r === 'installed' || existsSync(fetchedBinary(r))) && casSafe(natsVersion(r), 3),
  );

/**
 * The release a cluster runs on unless told (startNatsCluster, the install doc's test): the newest, whose JetStream
 * group forms with every server at a first start (2.10.27 sometimes leaves one out: metaGroupForms).
 */
export function natsClusterRelease(): NatsRelease {
  const newest = natsClusterReleases().at(-1);
  if (newest === undefined)
    throw new Error(
      'no nats-server here runs replicated streams (2.9.21 or later): `bash scripts/bootstrap.sh --tests` fetches two',
    );
  return newest;
}

/** Where bootstrap puts a fetched release's binary. */
const fetchedBinary = (release: Exclude<NatsRelease, 'installed'>): string =>
  join(repoRoot, 'node_modules', '.cache', 'haul', `nats-server-${release}`, 'nats-server');

/** Where nats-server lives: PATH first, then Debian's /usr/sbin (not on a non-root PATH); the others, fetched. */
export function natsServerBinary(release: NatsRelease = 'installed'): string {
  if (release !== 'installed') {
    const binary = fetchedBinary(release);
    if (existsSync(binary)) return binary;
    throw new Error(
      `the ${release} nats-server (Debian ${fetchedFrom[release]}'s) is not at ${binary}: run \`bash scripts/bootstrap.sh --tests\``,
    );
  }
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  if (existsSync('/usr/sbin/nats-server')) return '/usr/sbin/nats-server';
  throw new Error(
    'nats-server not found: install it with `sudo apt-get install -y nats-server` (or run `npm run bootstrap`)',
  );
}

/** Whether a TCP server can listen on `port` on loopback right now (it stops listening at once). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** The kernel's range of ephemeral ports (net.ipv4.ip_local_port_range), Linux's default when unreadable. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux, or no /proc: the default
  }
  return [32768, 60999];
}

/**
 * A free TCP port on loopback for a server a test starts, below the kernel's ephemeral range. A port the kernel
 * picks (a listen on port 0) comes from that range, where every other listen on port 0 (the streamers' data ports,
 * the tests' own servers) and every outgoing connection takes its port too: between this check and the server's own
 * bind, any of them could take it, and the server would fail to listen. Below the range only another test's pick
 * can, one of about 20,000 drawn at random.
 */
export async function freePort(): Promise<number> {
  const floor = 10_000;
  const below = ephemeralRange()[0] - 1;
  for (let tries = 0; below - floor >= 1000 && tries < 50; tries++) {
    const port = floor + Math.floor(Math.random() * (below - floor + 1));
    if (await canListen(port)) return port;
  }
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

type ServerSpec = {
  name: string;
  /** Which nats-server (natsServerBinary's default when absent). */
  release?: NatsRelease | undefined;
  port: number;
  clusterPort?: number;
  routes?: number[];
  /** Its monitoring port (HTTP on loopback), where a cluster's test reads whether the JetStream meta group formed. */
  monitorPort?: number;
  storeDir: string;
  confPath: string;
  /** A copy of a secrets folder's nats-server.conf (identities, permissions, TLS), included before the rest. */
  include?: string;
};

function config(s: ServerSpec): string {
  const lines = [
    // Included first: the lines below then override its listen address and store (later keys win).
    ...(s.include ? [`include "${s.include}"`] : []),
    `server_name: ${s.name}`,
    `listen: 127.0.0.1:${s.port}`,
    `jetstream { store_dir: "${s.storeDir}", max_memory_store: 256MB, max_file_store: 8GB }`,
  ];
  if (s.monitorPort !== undefined) lines.push(`http: 127.0.0.1:${s.monitorPort}`);
  if (s.clusterPort !== undefined && s.routes) {
    lines.push(
      `cluster { name: haulc, listen: 127.0.0.1:${s.clusterPort}, routes: [${s.routes
        .map((p) => `nats-route://127.0.0.1:${p}`)
        .join(', ')}] }`,
    );
  }
  return lines.join('\n') + '\n';
}

/** How long a nats-server may take to say it is ready (well under a second, even on a busy machine). */
const readyBudgetMs = 30_000;

/**
 * Start the process and resolve once it logs that it is ready (no polling, no sleeps). One not ready within
 * readyBudgetMs is killed and the start fails with what it logged, rather than leave its test waiting.
 */
function launch(spec: ServerSpec): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    // In its own folder: a server killed while it writes a stream's files has left meta.inf and meta.sum in its
    // working directory (seen once in the soak), which must not be the repository's.
    const child = spawn(natsServerBinary(spec.release), ['-c', spec.confPath], {
      cwd: dirname(spec.confPath),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    reapOnExit(child.pid);
    child.once('exit', () => forget(child.pid));
    let log = '';
    const notReady = setTimeout(() => {
      reject(
        new Error(`nats-server ${spec.name} was not ready in ${readyBudgetMs / 1000} s; it logged:\n${log}`),
      );
      child.kill('SIGKILL');
    }, readyBudgetMs);
    const onData = (b: Buffer) => {
      log += b.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(notReady);
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve(child);
      }
    };
    child.stderr?.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(notReady);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(notReady);
      reject(new Error(`nats-server exited with ${code} before it was ready:\n${log}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(
    () => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, 'SIGKILL'),
    5000,
  );
  await exited;
  clearTimeout(timer);
}

function wrap(spec: ServerSpec, dir: string, first: ChildProcess, ownsDir: boolean): NatsServer {
  let child = first;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${spec.port}`,
    port: spec.port,
    get pid() {
      return child.pid ?? -1;
    },
    storeDir: spec.storeDir,
    async stop() {
      await stopChild(child);
      if (ownsDir) await rm(dir, { recursive: true, force: true });
    },
    async kill(signal = 'SIGKILL') {
      if (child.pid === undefined || child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      process.kill(child.pid, signal);
      await exited;
    },
    async restart() {
      child = await launch(spec);
    },
  };
  return server;
}

export type NatsServerOptions = {
  /**
   * A secrets folder made by `haul init-cluster` (createTestSecrets): the server then runs its nats-server.conf —
   * nkey users with their permissions, TLS required — on a free loopback port with a temporary store. Clients
   * connect with secretsEnv(secrets, identity).
   */
  secrets?: string;
  /** Which nats-server (default the installed one). */
  release?: NatsRelease | undefined;
  /** startNatsCluster: how long its JetStream meta group may take to form before it is started again. */
  formBudgetMs?: number;
  /**
   * startNatsCluster: whether the servers' views show the group formed (metaGroupFormed by default). Its own test
   * gives one that never holds, to see a group that never forms: a budget alone cannot promise that, as a group may
   * form before its first view is read (a server's "ready" line read late on a busy machine).
   */
  groupFormed?: typeof metaGroupFormed;
};

/** A real single nats-server with JetStream on a free loopback port and its own temporary store. */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), 'haul-nats-'));
  // stop() removes it; an exit before that does too (after the server is killed), and one where the server never
  // started (its binary missing, its config refused).
  removeOnExit(dir);
  const spec: ServerSpec = {
    name: 'n1',
    release: opts.release,
    port: await freePort(),
    storeDir: join(dir, 'store'),
    confPath: join(dir, 'nats.conf'),
  };
  if (opts.secrets) {
    // Copied beside the config: nats-server resolves an include relative to the including file.
    spec.include = 'secrets.conf';
    await copyFile(join(opts.secrets, 'nats-server.conf'), join(dir, spec.include));
  }
  await writeFile(spec.confPath, config(spec));
  return wrap(spec, dir, await launch(spec), true);
}

export type NatsCluster = { servers: NatsServer[]; urls: string; stop(): Promise<void> };

/** How long a cluster's JetStream meta group may take to form before the cluster is started again, by default: it
 * formed in 0.3-0.9 s on an idle machine, and in 0.8-2.5 s with six busy loops beside it on two cores. */
const defaultFormBudgetMs = 20_000;
/** How many times a cluster is started before startNatsCluster gives up. */
const formAttempts = 4;

/** What one server says of the JetStream meta group (its /jsz), or why it did not answer. */
export type MetaView = {
  server: string;
  leader?: string;
  clusterSize?: number;
  replicas?: MetaPeer[];
  error?: string;
};
type MetaPeer = { name: string; current: boolean };

async function metaView(spec: ServerSpec): Promise<MetaView> {
  try {
    const res = await fetch(`http://127.0.0.1:${spec.monitorPort}/jsz`, {
      signal: AbortSignal.timeout(2000),
    });
    const meta = ((await res.json()) as { meta_cluster?: Record<string, unknown> }).meta_cluster ?? {};
    return {
      server: spec.name,
      ...(typeof meta['leader'] === 'string' && meta['leader'] ? { leader: meta['leader'] } : {}),
      ...(typeof meta['cluster_size'] === 'number' ? { clusterSize: meta['cluster_size'] } : {}),
      ...(Array.isArray(meta['replicas']) ? { replicas: meta['replicas'] as MetaPeer[] } : {}),
    };
  } catch (err) {
    return { server: spec.name, error: String(err) };
  }
}

/** Whether every server follows one leader, and that leader counts every other server as a current peer. */
export function metaGroupFormed(views: readonly MetaView[], size: number): boolean {
  const leader = views.find((v) => v.leader === v.server);
  return (
    leader !== undefined &&
    views.length === size &&
    views.every((v) => v.leader === leader.server && v.clusterSize === size) &&
    leader.replicas?.length === size - 1 &&
    leader.replicas.every((r) => r.current)
  );
}

/**
 * Until the servers' JetStream meta group has formed, or the budget is spent: the views last read when it has not
 * (undefined when it has). A server takes clients before its routes are up and before the meta group has a leader;
 * what each server reports is read (there is no event to await), every 100 ms.
 *
 * Why a budget at all: nats-server 2.10.27 (Debian trixie's, the tests' newer release) sometimes forms its meta group
 * at a cold start without one of the three servers, and never adds it (3 of 48 starts, and 2 of 32 on a busy machine,
 * each watched for 90 s). In the servers' debug logs that server had stood for election in the first term and lost;
 * it followed the leader from then on, and the leader's group went from the three expected to two ("Decreasing our
 * clustersize: 3 -> 2"), every replicated stream then refused with "no suitable peers for placement". 2.9.10 formed
 * every time (72 of 72), and so did Debian sid's 2.15.1 (48 of 48). The cluster is then started again, afresh
 * (restarting only the server left out also brings it in: docs/install.md, section 3).
 */
async function metaGroupForms(
  specs: readonly ServerSpec[],
  budgetMs: number,
  formed: typeof metaGroupFormed,
): Promise<MetaView[] | undefined> {
  const deadline = Date.now() + budgetMs;
  for (;;) {
    const views = await Promise.all(specs.map(metaView));
    if (formed(views, specs.length)) return undefined;
    if (Date.now() >= deadline) return views;
    await delay(100);
  }
}

function describeViews(views: readonly MetaView[]): string {
  return views
    .map((v) =>
      v.error !== undefined
        ? `${v.server}: ${v.error}`
        : `${v.server}: leader ${v.leader ?? 'none'}, cluster size ${v.clusterSize ?? '?'}` +
          (v.replicas
            ? `, peers ${v.replicas.map((r) => `${r.name}${r.current ? '' : ' (behind)'}`).join(' ')}`
            : ''),
    )
    .join('; ');
}

/** The specs of a cluster of `size` servers, on ports of their own, their files in `dir`. */
async function clusterSpecs(dir: string, size: number, opts: NatsServerOptions): Promise<ServerSpec[]> {
  const free = () => Promise.all(Array.from({ length: size }, () => freePort()));
  const [ports, clusterPorts, monitorPorts] = await Promise.all([free(), free(), free()]);
  return ports.map<ServerSpec>((port, i) => ({
    name: `n${i + 1}`,
    release: opts.release ?? natsClusterRelease(),
    port,
    clusterPort: clusterPorts[i]!,
    routes: clusterPorts,
    monitorPort: monitorPorts[i]!,
    storeDir: join(dir, `store-${i + 1}`),
    confPath: join(dir, `n${i + 1}.conf`),
    ...(opts.secrets ? { include: 'secrets.conf' } : {}),
  }));
}

/**
 * Three clustered servers with JetStream (domain "haul"), for replicated-stream tests (`secrets`: as
 * startNatsServer). It returns once their JetStream meta group has formed (metaGroupForms); a cluster whose group
 * has not formed within the budget, or one of whose servers did not start, is stopped and started again, on new ports
 * with empty stores, a few times. The group's leader may still lack a server's statistics for a moment and place no
 * replica there yet ("peer offline"): a caller's first replicated stream retries that, as haul's own calls do
 * (retryTransient).
 */
export async function startNatsCluster(size = 3, opts: NatsServerOptions = {}): Promise<NatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'haul-natsc-'));
  removeOnExit(dir); // as startNatsServer's
  if (opts.secrets) await copyFile(join(opts.secrets, 'nats-server.conf'), join(dir, 'secrets.conf'));
  const budgetMs = opts.formBudgetMs ?? defaultFormBudgetMs;
  for (let attempt = 1; ; attempt++) {
    const specs = await clusterSpecs(dir, size, opts);
    for (const s of specs) await writeFile(s.confPath, config(s));
    const started = await Promise.allSettled(specs.map((s) => launch(s)));
    const servers = specs.flatMap((s, i) => {
      const r = started[i]!;
      return r.status === 'fulfilled' ? [wrap(s, dir, r.value, false)] : [];
    });
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const stuck = failed
      ? undefined
      : await metaGroupForms(specs, budgetMs, opts.groupFormed ?? metaGroupFormed);
    if (!failed && !stuck) return cluster(servers, dir);
    await Promise.all(servers.map((s) => s.stop()));
    await Promise.all(specs.map((s) => rm(s.storeDir, { recursive: true, force: true })));
    // A server that did not start (its port taken since freePort's check, by anything on the machine) is started
    // again on new ports too, as a group that did not form is.
    const why = failed
      ? `a server did not start: ${String((failed.reason as Error).message ?? failed.reason).trim()}`
      : `the JetStream meta group did not form in ${budgetMs / 1000} s (${describeViews(stuck!)})`;
    if (attempt === formAttempts) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(
        `a cluster of ${size} nats-servers did not start in ${formAttempts} starts; the last: ${why}`,
      );
    }
    process.stderr.write(`[nats-cluster] ${why}: starting the cluster again\n`);
  }
}

function cluster(servers: NatsServer[], dir: string): NatsCluster {
  const urls = servers.map((s) => s.url).join(',');
  return {
    servers,
    urls,
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
