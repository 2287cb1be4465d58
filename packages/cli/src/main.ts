import {
  busConfigFromEnv,
  buckets,
  connectBus,
  createEventLog,
  decodeJson,
  encodeJson,
  limits,
  openBucket,
  subjects,
  TrustConfigError,
  trustFromEnv,
  type EventLog,
} from '@haul/bus';
import {
  createValidators,
  type MigrateRequest,
  type MigrationStatus,
  type NodeHeartbeat,
} from '@haul/schemas';
import { createApiClient } from './client.ts';
import { followToEnd, progressLine } from './follow.ts';
import { formatEvent, formatStats } from './format.ts';
import { operatorAction, stuckLine } from './operator.ts';

const help = `haul: operate live migrations of OpenVZ/Virtuozzo containers.

Usage: haul <command> [options]            (NATS: --nats URL or HAUL_NATS_URL, default nats://127.0.0.1:4222)

  migrate --ct ID --from NODE --to NODE    start a migration and show its progress until it ends
          [--mode live|restart] [--shared-disk PATH]... [--pre-dump on|off|auto] [--max-iterations N]
          [--max-downtime-ms N [--downtime-policy abort|proceed]] [--bandwidth MBPS] [--request-id ID]
          [--no-wait] [--json]             exit 0 completed, 1 rolled back, 2 rejected
  status ID [--json]                       one migration's current status and stats
  ls [--active | --stuck] [--json]         all migrations; --stuck: those waiting for an operator
  retry ID [--reason TEXT]                 a stuck migration: try its stuck action again (after fixing its cause)
  resolve ID --action KEY [--reason TEXT]  a stuck migration: you did its stuck action by hand; the plan moves on
                                           (compensations and cleanup only; docs/protocol.md, "Stuck migrations")
  events [-f] [--migration ID] [--since TIME | --from-seq N] [--json]
                                           the event log (NDJSON with --json), from any point, -f to follow
  cancel ID [--reason TEXT]                roll back a migration (refused past the commit point)
  nodes [--json]                           node agents: heartbeat age and capabilities
  services [--json]                        every running coordinator, node agent and image streamer, with the
                                           messages each refused to believe (forged or unsigned)

Reading events needs the cluster's registry: HAUL_IDENTITIES_FILE (identities.json), or HAUL_INSECURE=1.`;

type Flags = Map<string, string[]>;

function parse(argv: string[]): { cmd: string | undefined; pos: string[]; flags: Flags } {
  const flags: Flags = new Map();
  const pos: string[] = [];
  const bool = new Set([
    '-f',
    '--follow',
    '--json',
    '--active',
    '--stuck',
    '--no-wait',
    '--help',
    '-h',
    '--skip-cpu-check',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('-')) {
      const [k, inline] = a.includes('=')
        ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
        : [a, undefined];
      const v = bool.has(k) ? '' : (inline ?? argv[++i]);
      if (v === undefined) throw new Error(`${k} needs a value`);
      flags.set(k, [...(flags.get(k) ?? []), v]);
    } else pos.push(a);
  }
  return { cmd: pos.shift(), pos, flags };
}

export async function main(argv: string[]): Promise<number> {
  let p: ReturnType<typeof parse>;
  try {
    p = parse(argv);
  } catch (e) {
    console.error(`haul: ${(e as Error).message}\n\n${help}`);
    return 2;
  }
  const { cmd, pos, flags } = p;
  if (!cmd || flags.has('--help') || flags.has('-h') || cmd === 'help') {
    console.log(help);
    return cmd ? 0 : 2;
  }
  const one = (k: string) => flags.get(k)?.at(-1);
  const json = flags.has('--json');
  const servers = one('--nats') ?? process.env['HAUL_NATS_URL'] ?? 'nats://127.0.0.1:4222';
  let nc;
  try {
    nc = await connectBus(
      { ...busConfigFromEnv('haul-cli'), servers },
      { maxReconnectAttempts: 0, timeout: 3000 },
    );
  } catch (e) {
    console.error(`haul: ${(e as Error).message}`);
    return 3;
  }
  const validators = createValidators();
  const api = createApiClient(nc);
  // Events are shown only when believed: the registry (HAUL_IDENTITIES_FILE) is read when a command reads the log.
  let eventLog: EventLog | undefined;
  const log = (): EventLog => {
    if (eventLog) return eventLog;
    const trust = trustFromEnv('reader');
    if (!trust.secure)
      console.error('haul: HAUL_INSECURE=1: events are shown without checking who wrote them');
    return (eventLog = createEventLog(nc, validators, trust));
  };
  try {
    switch (cmd) {
      case 'migrate': {
        const req: Record<string, unknown> = {
          requestId: one('--request-id') ?? `cli-${Date.now().toString(36)}`,
          ctid: one('--ct'),
          source: one('--from'),
          target: one('--to'),
        };
        const opt = (flag: string, field: string, num = false) => {
          const v = one(flag);
          if (v !== undefined) req[field] = num ? Number(v) : v;
        };
        opt('--mode', 'mode');
        opt('--pre-dump', 'preDump');
        opt('--max-iterations', 'maxIterations', true);
        opt('--max-downtime-ms', 'maxDowntimeMs', true);
        opt('--downtime-policy', 'downtimePolicy');
        opt('--bandwidth', 'bandwidthLimitMBps', true);
        opt('--frozen-lease-ms', 'frozenLeaseMs', true);
        if (flags.has('--shared-disk')) req['sharedDisks'] = flags.get('--shared-disk');
        if (flags.has('--skip-cpu-check')) req['skipCpuCheck'] = true;
        const reply = await api.migrate(req as unknown as MigrateRequest);
        if (!reply.ok) {
          console.error(
            `haul: rejected: ${reply.error.code}${reply.error.field ? ` (field ${reply.error.field})` : ''}: ${reply.error.message}`,
          );
          return 2;
        }
        console.log(
          json
            ? JSON.stringify(reply)
            : `migration ${reply.migrationId}${reply.duplicate ? ' (already requested)' : ''}`,
        );
        if (flags.has('--no-wait')) return 0;
        const view = { iteration: 0, phase: 'preflight' };
        const end = await followToEnd(log(), reply.migrationId, (e) => {
          if (json) return console.log(JSON.stringify(e));
          const line = progressLine(e, view);
          if (line) console.log(line);
        });
        if (!json) {
          console.log(
            end.type === 'MigrationCompleted'
              ? `\nMigration succeeded`
              : `\nMigration rolled back: ${end.data.reason}`,
          );
          console.log(formatStats(end.data.stats));
        }
        return end.type === 'MigrationCompleted' ? 0 : 1;
      }
      case 'status': {
        const id = pos[0];
        if (!id) throw new Error('status needs a migration id');
        const r = await api.status(id);
        if (!r.ok) {
          console.error(`haul: ${r.error.code}: ${r.error.message}`);
          return 2;
        }
        const s = r.status!;
        if (json) console.log(JSON.stringify(s));
        else {
          console.log(
            `${s.migrationId}  CT ${s.ctid}  ${s.source} → ${s.target}  ${s.mode}  ${s.phase}  iteration ${s.iteration}${s.reason ? `  (${s.reason})` : ''}`,
          );
          if (s.runningSteps?.length) console.log(`running: ${s.runningSteps.join(', ')}`);
          if (s.stuck) console.log(stuckLine(s));
          if (s.stats) console.log(formatStats(s.stats));
        }
        return 0;
      }
      case 'ls': {
        const stuck = flags.has('--stuck');
        const r = await api.list(flags.has('--active') || stuck);
        if (!r.ok) throw new Error(r.error.message);
        for (const s of (r.migrations ?? []).filter((m) => !stuck || m.phase === 'stuck'))
          console.log(
            json
              ? JSON.stringify(s)
              : `${s.migrationId}  CT ${s.ctid.padEnd(6)} ${s.source} → ${s.target}  ${s.mode.padEnd(7)} ${s.phase.padEnd(11)} ${s.updatedAt}${s.stuck ? `\n  ${stuckLine(s)}` : ''}`,
          );
        return 0;
      }
      case 'events': {
        const follow = flags.has('-f') || flags.has('--follow');
        const opts: Parameters<EventLog['follow']>[0] = {};
        const mid = one('--migration');
        if (mid) opts.migrationId = mid;
        const since = one('--since');
        const from = one('--from-seq');
        if (since) {
          const d = new Date(since);
          if (Number.isNaN(d.getTime())) throw new Error(`--since: not a time: ${since}`);
          opts.since = d;
        }
        if (from) opts.fromSeq = Number(from);
        const ac = new AbortController();
        opts.signal = ac.signal;
        process.once('SIGINT', () => ac.abort());
        // Without -f: stop once the stream's current end is reached.
        let lastSeq = Infinity;
        if (!follow) {
          const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(nc);
          lastSeq = (await jsm.streams.info('HAUL_EVENTS')).state.last_seq;
          if (lastSeq === 0) return 0;
        }
        for await (const s of log().follow(opts)) {
          console.log(json ? JSON.stringify({ seq: s.seq, ...s.event }) : formatEvent(s.event, s.seq));
          if (s.seq >= lastSeq) break;
        }
        return 0;
      }
      case 'cancel': {
        const id = pos[0];
        if (!id) throw new Error('cancel needs a migration id');
        const r = await api.cancel(id, one('--reason'));
        if (!r.ok) {
          console.error(`haul: cancel refused: ${r.error.code}: ${r.error.message}`);
          return 2;
        }
        console.log(json ? JSON.stringify(r.status) : `${id}: ${r.status?.phase ?? 'cancelling'}`);
        return 0;
      }
      case 'retry':
      case 'resolve':
        return await operatorAction(api, cmd, pos[0], {
          action: one('--action'),
          reason: one('--reason'),
          json,
        });
      case 'services': {
        const replies = await nc.requestMany(subjects.discovery, encodeJson({}), {
          strategy: 'timer',
          maxWait: 1000,
        });
        for await (const m of replies) {
          const d = decodeJson(m.data) as {
            service: string;
            node: string;
            pid: number;
            startedAt: string;
            signed?: boolean;
            rejectedMessages?: number;
          };
          const security =
            d.signed === undefined ? '' : d.signed ? `  rejected ${d.rejectedMessages ?? 0}` : '  INSECURE';
          console.log(
            json
              ? JSON.stringify(d)
              : `${d.service.padEnd(15)} ${String(d.node).padEnd(12)} pid ${d.pid}  up since ${d.startedAt}${security}`,
          );
        }
        return 0;
      }
      case 'nodes': {
        const kv = await openBucket(nc, buckets.nodes);
        for await (const k of await kv.keys()) {
          const e = await kv.get(k);
          if (!e || e.operation !== 'PUT') continue;
          const hb = decodeJson(e.value) as NodeHeartbeat;
          const age = Date.now() - Date.parse(hb.time);
          if (json) console.log(JSON.stringify({ ...hb, ageMs: age }));
          else
            console.log(
              `${hb.node.padEnd(12)} ${age > limits.nodeStaleMs ? 'STALE' : 'alive'} ${(age / 1000).toFixed(1)}s ago  criu ${hb.criuVersion}  mem-track ${hb.memTrack ? 'yes' : 'no'}  free ${(hb.freeBytes / 1e9).toFixed(1)} GB  images ${hb.imageRoot}`,
            );
        }
        return 0;
      }
      default:
        console.error(`haul: unknown command ${cmd}\n\n${help}`);
        return 2;
    }
  } catch (e) {
    console.error(`haul: ${(e as Error).message}`);
    return e instanceof TrustConfigError ? 2 : 1;
  } finally {
    await nc.close();
  }
}

export type { MigrationStatus };
