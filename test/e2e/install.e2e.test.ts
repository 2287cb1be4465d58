import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { busConfigFromEnv, connectBus, createEventLog } from '@haul/bus';
import { createValidators, type MigrationEvent } from '@haul/schemas';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  brokenInvariants,
  createEmulatedCluster,
  emulatorBin,
  freePort,
  haulBin,
  lastBesidesSeal,
  loadTestIdentities,
  natsClusterRelease,
  natsServerBinary,
  repoRoot,
  secretsEnv,
  startService,
  takeBaseline,
  type Baseline,
  type CtPlace,
  type EmulatedCluster,
  type ServiceProcess,
} from '@haul/test';
import { forget, reapOnExit } from '../support/reaper.ts';

/**
 * docs/install.md, sections 2 to 5, on this machine: its own commands and config examples, with only host names,
 * ports and paths changed (loopback, and a folder per host standing for its `/`). Each block the test runs is marked
 * in the doc with `<!-- install.e2e: NAME -->`; lines marked `# [real host]` need a Virtuozzo host, root or systemd
 * and are left out (what they would make is checked where it can be). The emulated nodes of host-emulators stand
 * for node-a and node-b.
 */

const doc = readFileSync(join(repoRoot, 'docs', 'install.md'), 'utf8');

/** The fenced block after `<!-- install.e2e: name -->`. */
function block(name: string): string {
  const at = doc.indexOf(`<!-- install.e2e: ${name} -->`);
  assert.ok(at >= 0, `docs/install.md has no <!-- install.e2e: ${name} --> marker`);
  const m = /\n```[a-z]*\n([\s\S]*?)\n```\n/.exec(doc.slice(at));
  assert.ok(m, `no code block after the ${name} marker`);
  return m[1]!;
}

/** A shell block without its `[real host]` lines (a line continued by `\` belongs to the next one). */
function runnable(sh: string): string {
  const lines: string[] = [];
  let cmd: string[] = [];
  for (const line of sh.split('\n')) {
    cmd.push(line);
    if (line.endsWith('\\')) continue;
    if (!cmd.some((l) => l.includes('# [real host]'))) lines.push(...cmd);
    cmd = [];
  }
  return lines.join('\n');
}

const nats = [1, 2, 3] as const;
const nodes = ['node-a', 'node-b'] as const;

type Ports = { client: number; route: number; http: number };

/**
 * Section 2's operator mode, as its paragraph says to do it: `--auth jwt` on the init-cluster line, each identity's
 * `<name>.creds` where the doc has `<name>.nk`, `credsFile` in a config where it has `nkeySeedFile`, HAUL_CREDS_FILE
 * where it has HAUL_NKEY_SEED_FILE, and operator.jwt beside nats-server.conf on the NATS hosts.
 */
const operatorMode = {
  initCluster: (sh: string) => `${sh} --auth jwt`,
  identityFile: (name: string) => `${name}.creds`,
  config: (c: Record<string, unknown>) => {
    const { nkeySeedFile, ...rest } = c;
    assert.equal(typeof nkeySeedFile, 'string', 'the example names its nkeySeedFile');
    return { ...rest, credsFile: (nkeySeedFile as string).replace(/\.nk$/, '.creds') };
  },
  cli: (sh: string) => {
    const from = 'HAUL_NKEY_SEED_FILE=./haul-secrets/$1.nk';
    assert.ok(sh.includes(from), `the block sets ${from}`);
    return sh.replace(from, () => 'HAUL_CREDS_FILE=./haul-secrets/$1.creds');
  },
  natsFiles: ['operator.jwt'],
  /** What the doc's paragraph must say for these changes to be its own. */
  said: ['--auth jwt', '<name>.creds', '"credsFile"', '`HAUL_CREDS_FILE`', '`operator.jwt`'],
};
const nkeyMode = {
  initCluster: (sh: string) => sh,
  identityFile: (name: string) => `${name}.nk`,
  config: (c: Record<string, unknown>) => c,
  cli: (sh: string) => sh,
  natsFiles: [] as string[],
  said: [] as string[],
};

for (const [auth, mode] of [
  ['nkey users', nkeyMode],
  ['operator mode (.creds)', operatorMode],
] as const)
  describe(`docs/install.md, sections 2-5, run on this machine: ${auth}`, () => {
    let tmp: string; // the admin/ops machine's working folder; nats-N/ stands for that host's `/`
    let bin: string; // `haul` and `node` on PATH, as after section 1
    let cluster: EmulatedCluster; // node-a and node-b: their `/` is cluster.nodeRoot(node)
    const ports = new Map<number, Ports>();
    const servers: ChildProcess[] = [];
    const serverLogs = new Map<number, string>();
    const services: ServiceProcess[] = [];
    const connections: NatsConnection[] = [];
    let streamPorts = '';
    const natsRoot = (n: number) => join(tmp, `nats-${n}`);
    const secrets = () => join(tmp, 'haul-secrets');

    /** Host names and ports of the doc, on loopback. */
    const loopback = (text: string) =>
      text
        .replace(
          /nats-(\d)\.example\.net:4222/g,
          (_, n: string) => `127.0.0.1:${ports.get(Number(n))!.client}`,
        )
        .replace(
          /nats-(\d)\.example\.net:6222/g,
          (_, n: string) => `127.0.0.1:${ports.get(Number(n))!.route}`,
        );

    /** A bash -e run of doc lines in `cwd` with only PATH and `env`: nothing of this process's settings. */
    const sh = (script: string, env: Record<string, string> = {}, cwd = tmp) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const child = spawn('bash', ['-e', '-c', script], {
          cwd,
          env: { PATH: `${bin}:${emulatorBin}:/usr/local/bin:/usr/bin:/bin`, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        reapOnExit(child.pid);
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const hung = setTimeout(() => child.kill('SIGKILL'), 600_000);
        child.once('exit', (code) => {
          clearTimeout(hung);
          forget(child.pid);
          resolve({ code, out, err });
        });
      });

    /** A config example of section 4 for a host whose `/` is `root`: paths under it, NATS on loopback. */
    function configFor(name: string, root: string, replace: Record<string, string>): Record<string, unknown> {
      let text = loopback(block(name));
      // Whole words: node-a, not the node-a of node-agent.
      for (const [from, to] of Object.entries(replace))
        text = text.replace(new RegExp(`${from.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![a-z])`, 'g'), to);
      const rooted = (v: unknown): unknown => {
        if (typeof v === 'string' && v.startsWith('/vz/shared'))
          return cluster.shared + v.slice('/vz/shared'.length);
        if (typeof v === 'string' && v.startsWith('/')) return root + v;
        if (Array.isArray(v)) return v.map(rooted);
        if (v && typeof v === 'object')
          return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rooted(x)]));
        return v;
      };
      return mode.config(rooted(JSON.parse(text)) as Record<string, unknown>);
    }

    /** Install `files` from the secrets folder into `folder` (mode 0700 / 0600), as section 2's table says. */
    const install = (folder: string, files: string[]) => {
      mkdirSync(folder, { recursive: true, mode: 0o700 });
      for (const f of files) copyFileSync(join(secrets(), f), join(folder, f));
    };
    const identity = (name: string) => [mode.identityFile(name), `${name}-cert.pem`, `${name}-key.pem`];

    /** Where the config of `service` on `host` is (the doc's /etc/haul/<service>.json); coordinator on nats-1, nats-2. */
    const configPath = (root: string, service: string) => join(root, 'etc', 'haul', `${service}.json`);
    /** A service's environment: `env -i` with PATH, and on an emulated node the emulators' root. */
    const hostEnv = (node?: string): Record<string, string> => ({
      PATH: `${bin}:${emulatorBin}:/usr/local/bin:/usr/bin:/bin`,
      ...(node ? { HAUL_EMU_ROOT: cluster.nodeRoot(node) } : {}),
    });

    function startNats(n: number): Promise<void> {
      const child = spawn(
        natsServerBinary(natsClusterRelease()),
        ['-c', join(natsRoot(n), 'etc', 'haul', 'nats', 'server.conf')],
        {
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      reapOnExit(child.pid);
      child.once('exit', () => forget(child.pid));
      servers.push(child);
      serverLogs.set(n, '');
      return new Promise((resolve, reject) => {
        child.stderr.on('data', (b: Buffer) => {
          serverLogs.set(n, serverLogs.get(n)! + b.toString());
          if (serverLogs.get(n)!.includes('Server is ready')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`nats-${n} exited ${code}:\n${serverLogs.get(n)}`)));
      });
    }

    /**
     * Resolves once a server's log says the cluster has a JetStream metadata leader (no polling); rejects when one of
     * the servers exits first.
     */
    const metaLeader = () =>
      new Promise<void>((resolve, reject) => {
        const re = /new JetStream cluster metadata leader|cluster new metadata leader/;
        const check = () => [...serverLogs.values()].some((l) => re.test(l));
        if (check()) return resolve();
        const t = setTimeout(() => reject(new Error('no JetStream metadata leader in 120 s')), 120_000);
        for (const s of servers) {
          s.stderr!.on('data', () => {
            if (check()) {
              clearTimeout(t);
              resolve();
            }
          });
          s.once('exit', () => {
            clearTimeout(t);
            reject(new Error('a server exited before the cluster had a metadata leader'));
          });
        }
      });

    /** Stop the servers started so far, by PID. */
    async function stopServers() {
      for (const s of servers) {
        if (s.exitCode !== null || s.signalCode !== null || s.pid === undefined) continue;
        const gone = new Promise((r) => s.once('exit', r));
        process.kill(s.pid, 'SIGKILL');
        await gone;
      }
    }

    /** Nine ports below the ephemeral range, free when drawn (the servers bind them a section later). */
    async function drawPorts() {
      for (const n of nats)
        ports.set(n, { client: await freePort(), route: await freePort(), http: await freePort() });
    }

    async function stopAll() {
      for (const s of services) await s.kill('SIGKILL');
      for (const c of connections) if (!c.isClosed()) await c.close();
      await stopServers();
      cluster?.destroy();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }

    before(async () => {
      tmp = mkdtempSync(join(tmpdir(), 'haul-install-'));
      try {
        bin = join(tmp, 'bin');
        mkdirSync(bin);
        symlinkSync(haulBin, join(bin, 'haul'));
        symlinkSync(process.execPath, join(bin, 'node'));
        await drawPorts();
        const base = 23000 + Math.floor(Math.random() * 400) * 10; // below the ephemeral ports, as the doc advises
        streamPorts = `${base}-${base + 9}`;
        cluster = createEmulatedCluster('haul-install-hosts-');
        for (const node of nodes) await cluster.addNode(node);
      } catch (err) {
        await stopAll();
        throw err;
      }
    });
    after(stopAll);

    it('section 2: haul init-cluster, as written (the --host names are in the server certificate with localhost)', async () => {
      const section2 = doc.slice(doc.indexOf('<!-- install.e2e: init-cluster -->'), doc.indexOf('## 3.'));
      for (const words of mode.said) assert.ok(section2.includes(words), `section 2 says ${words}`);
      const r = await sh(mode.initCluster(block('init-cluster')));
      assert.equal(r.code, 0, r.err);
      for (const f of [
        'ca.pem',
        'ca-key.pem',
        'identities.json',
        'nats-server.conf',
        'server-cert.pem',
        'server-key.pem',
      ])
        assert.ok(existsSync(join(secrets(), f)), f);
      for (const id of ['coordinator', 'agent@node-a', 'streamer@node-b', 'scheduler', 'ops'])
        for (const f of identity(id)) assert.ok(existsSync(join(secrets(), f)), f);
      // Copied to each host as the table says: every host the CA and registry, each service its identity.
      for (const root of [...nodes.map((n) => cluster.nodeRoot(n)), ...nats.map(natsRoot)])
        install(join(root, 'etc', 'haul', 'cluster'), ['ca.pem', 'identities.json']);
      for (const node of nodes) {
        install(join(cluster.nodeRoot(node), 'etc', 'haul', 'node-agent'), identity(`agent@${node}`));
        install(join(cluster.nodeRoot(node), 'etc', 'haul', 'image-streamer'), identity(`streamer@${node}`));
      }
      for (const n of [1, 2])
        install(join(natsRoot(n), 'etc', 'haul', 'coordinator'), identity('coordinator'));
    });

    /** Section 3's files on each server host: the generated nats-server.conf and the doc's server.conf, on loopback. */
    function writeServerFiles() {
      const generated = readFileSync(join(secrets(), 'nats-server.conf'), 'utf8');
      for (const n of nats) {
        const root = natsRoot(n);
        const dir = join(root, 'etc', 'haul', 'nats');
        install(dir, ['server-cert.pem', 'server-key.pem', 'ca.pem', ...mode.natsFiles]);
        // The generated file, for this host: its client port on loopback, its paths (--server-dir, --store-dir) under root.
        const conf = generated
          .replace('"0.0.0.0:4222"', `"127.0.0.1:${ports.get(n)!.client}"`)
          .replaceAll('/etc/haul/nats/', `${root}/etc/haul/nats/`)
          .replaceAll('/var/lib/haul/nats', `${root}/var/lib/haul/nats`);
        assert.notEqual(conf, generated);
        writeFileSync(join(dir, 'nats-server.conf'), conf, { mode: 0o600 });
        const server = loopback(block('server.conf'))
          .replace('server_name: nats-1', `server_name: nats-${n}`)
          .replace('http: 127.0.0.1:8222', `http: 127.0.0.1:${ports.get(n)!.http}`)
          .replace('listen: 0.0.0.0:6222', `listen: 127.0.0.1:${ports.get(n)!.route}`)
          .replaceAll('"/etc/haul/nats/', `"${root}/etc/haul/nats/`);
        assert.match(server, new RegExp(`listen: 127\\.0\\.0\\.1:${ports.get(n)!.route}`));
        writeFileSync(join(dir, 'server.conf'), server);
      }
    }

    it('section 3: three nats-servers from server.conf form a cluster; healthz says ok', async () => {
      // The nine ports were free in `before`; a server started by another test may have bound one since (each draws at
      // random below the ephemeral range). Then all three start again, on ports drawn anew.
      for (let attempt = 1; ; attempt++) {
        writeServerFiles();
        // The doc's `nats-server -c /etc/haul/nats/server.conf` on each host.
        const started = nats.map(startNats);
        const leader = metaLeader(); // listens to the servers just started
        try {
          await Promise.all([...started, leader]);
          break;
        } catch (err) {
          const taken = [...serverLogs.values()].some((l) => l.includes('address already in use'));
          if (!taken || attempt === 3) throw err;
          await stopServers();
          servers.length = 0;
          for (const n of nats) rmSync(join(natsRoot(n), 'var'), { recursive: true, force: true });
          await drawPorts();
        }
      }
      const healthz = runnable(block('healthz')).trim();
      const m = /^curl -s (http:\/\/127\.0\.0\.1:8222\/healthz\S*)/.exec(healthz);
      assert.ok(m, `the healthz line: ${healthz}`);
      for (const n of nats) {
        const url: string = m[1]!.replace(':8222', `:${ports.get(n)!.http}`);
        const res = await fetch(url).catch((err: unknown) => {
          throw new Error(`nats-${n}: ${url}: ${String(err)}; its log:\n${serverLogs.get(n)}`, {
            cause: err,
          });
        });
        assert.deepEqual(await res.json(), { status: 'ok' }, `nats-${n}: ${url}`);
      }
    });

    it('section 4: each config example passes --check-config (exit 0), run as the doc writes it under env -i', async () => {
      for (const node of nodes) {
        const root = cluster.nodeRoot(node);
        const agent = configFor('node-agent.json', root, { 'node-a': node });
        // The emulated host's `/` (hostRoot, default /) and the agent's state folder (default /var/lib/haul/agent) under it.
        agent['hostRoot'] = root;
        agent['stateDir'] = join(root, 'var', 'lib', 'haul', 'agent');
        writeFileSync(configPath(root, 'node-agent'), `${JSON.stringify(agent, null, 2)}\n`);
        const streamer = configFor('image-streamer.json', root, {
          'node-a': node,
          '"0.0.0.0"': '"127.0.0.1"',
          '"10.0.0.11"': '"127.0.0.1"',
          '"7400-7409"': `"${streamPorts}"`,
        });
        writeFileSync(configPath(root, 'image-streamer'), `${JSON.stringify(streamer, null, 2)}\n`);
        mkdirSync(cluster.shared, { recursive: true });
      }
      for (const n of [1, 2]) {
        const coordinator = configFor('coordinator.json', natsRoot(n), {
          'coordinator-1': `coordinator-${n}`,
        });
        writeFileSync(configPath(natsRoot(n), 'coordinator'), `${JSON.stringify(coordinator, null, 2)}\n`);
      }
      const lines = runnable(block('check-config')).split('\n').filter(Boolean);
      assert.equal(lines.length, 3, lines.join('\n'));
      const hosts: { root: string; node?: string }[] = [
        ...nodes.map((node) => ({ root: cluster.nodeRoot(node), node })),
        ...[1, 2].map((n) => ({ root: natsRoot(n) })),
      ];
      let checked = 0;
      for (const line of lines) {
        const service = /\/etc\/haul\/([a-z-]+)\.json/.exec(line)![1]!;
        for (const h of hosts) {
          if ((service === 'coordinator') !== (h.node === undefined)) continue;
          const cmd = line
            .replaceAll('/opt/haul/', `${repoRoot}/`)
            .replaceAll('/etc/haul/', `${h.root}/etc/haul/`);
          const r = await sh(
            `env -i ${Object.entries(hostEnv(h.node))
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')} ${cmd}`,
          );
          assert.equal(r.code, 0, `${cmd}\n${r.err}\n${r.out}`);
          checked++;
        }
      }
      assert.equal(checked, 6, 'an agent and a streamer per node, two coordinators');
    });

    it('section 4: the units the doc copies exist in deploy/systemd/ (running them needs systemd as PID 1)', () => {
      const units = [...block('units').matchAll(/\/opt\/haul\/(deploy\/systemd\/[a-z-]+\.service)/g)].map(
        (m) => m[1]!,
      );
      assert.deepEqual(units.sort(), [
        'deploy/systemd/haul-coordinator.service',
        'deploy/systemd/haul-image-streamer.service',
        'deploy/systemd/haul-node-agent.service',
      ]);
      for (const u of units) assert.ok(existsSync(join(repoRoot, u)), u);
    });

    let base: Baseline;
    let place: CtPlace;

    it('section 5: CT 101 with a shared disk, the services from their files, haul nodes and services as ops, haul migrate as scheduler: completed', async () => {
      // CT 101 on node-a with its disk on the shared storage, defined on node-b too (the doc's precondition).
      const shared = join(cluster.shared, 'ct101');
      const ct = ['create-ct', '--ctid', '101', '--memory-mb', '16', '--shared-disk', shared];
      await cluster.ok('node-a', 'haul-emu', ct);
      await cluster.ok('node-b', 'haul-emu', [...ct, '--config-only']);
      await cluster.ok('node-a', 'vzctl', ['--skipowner', '--skiplock', 'start', '101']);
      place = { cluster, nodes, ctid: '101', shared: [shared] };

      // What systemctl enable --now would start: each service from its file, nothing else in its environment.
      const start = (
        name: string,
        entry: string,
        root: string,
        service: string,
        ready: RegExp,
        node?: string,
      ) => {
        const s = startService(name, entry, hostEnv(node), [], ['--config', configPath(root, service)]);
        services.push(s);
        return s.waitForLine(ready, 120_000);
      };
      await start(
        'coordinator-1',
        'services/coordinator/src/main.ts',
        natsRoot(1),
        'coordinator',
        /coordinator started/,
      );
      await Promise.all([
        start(
          'coordinator-2',
          'services/coordinator/src/main.ts',
          natsRoot(2),
          'coordinator',
          /coordinator started/,
        ),
        ...nodes.flatMap((node) => [
          start(
            `agent-${node}`,
            'services/node-agent/src/main.ts',
            cluster.nodeRoot(node),
            'node-agent',
            /node agent started/,
            node,
          ),
          start(
            `streamer-${node}`,
            'services/image-streamer/src/main.ts',
            cluster.nodeRoot(node),
            'image-streamer',
            /image streamer started/,
            node,
          ),
        ]),
      ]);
      base = await takeBaseline(place, 'node-a');

      // The doc's block, its NATS names on loopback and the shared disk where the emulated storage is.
      const script = loopback(mode.cli(runnable(block('first-migration')))).replaceAll(
        '/vz/shared/',
        `${cluster.shared}/`,
      );
      const [setup, migrate] = script.split(/^as scheduler$/m);
      assert.ok(migrate, 'the block switches to the scheduler with `as scheduler`');
      const ops = await sh(setup!);
      assert.equal(ops.code, 0, `${ops.err}\n${ops.out}`);
      assert.match(ops.out, /node-a\s+alive/, ops.out);
      assert.match(ops.out, /node-b\s+alive/, ops.out);
      // haul services: two coordinators, an agent and a streamer per node.
      for (const row of [
        /^coordinator +coordinator-1 /m,
        /^coordinator +coordinator-2 /m,
        /^image-streamer +node-a /m,
        /^image-streamer +node-b /m,
        /^node-agent +node-a /m,
        /^node-agent +node-b /m,
      ])
        assert.match(ops.out, row, ops.out);
      const r = await sh(script); // the whole block, as pasted
      assert.equal(r.code, 0, `haul migrate did not complete:\n${r.err}\n${r.out}`);
      const id = /migration (m-[0-9a-f]+)/.exec(r.out)?.[1];
      assert.ok(id, r.out);

      // The data-safety invariants, read from the log as ops.
      const ids = loadTestIdentities(secrets());
      const nc = await connectBus(
        busConfigFromEnv('haul-install-test', {
          HAUL_NATS_URL: loopback('tls://nats-1.example.net:4222'),
          ...secretsEnv(secrets(), 'ops'),
        }),
      );
      connections.push(nc);
      const log = createEventLog(nc, createValidators(), ids.trust('ops'));
      const events: MigrationEvent[] = (await log.read(id)).events.map((e) => e.event);
      assert.equal(lastBesidesSeal(events)?.type, 'MigrationCompleted');
      assert.deepEqual(await brokenInvariants(place, id, events, base), []);
    });

    it("section 5: the streams and buckets have three replicas, by the monitoring endpoint (the doc's curl line)", async () => {
      const line = runnable(block('jsz')).split('\n')[0]!;
      const url = /curl -s '([^']+)'/.exec(line)?.[1];
      assert.ok(url, line);
      const expected = /# on a NATS host: (\d+) "num_replicas": 3/.exec(block('jsz'));
      assert.ok(expected, 'the block says how many streams have 3 replicas');
      for (const n of nats) {
        const text = await (await fetch(url.replace(':8222', `:${ports.get(n)!.http}`))).text();
        const replicas = [...text.matchAll(/"num_replicas": *(\d+)/g)].map((m) => Number(m[1]));
        assert.deepEqual(replicas, Array<number>(Number(expected[1])).fill(3), `nats-${n}`);
      }
    });
  });
