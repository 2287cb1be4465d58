import { setTimeout as delay } from 'node:timers/promises';
import type { Range } from './soak-args.ts';
import type { Rng } from './soak-rng.ts';
import { serviceKinds, type Managed, type ServiceKind } from './soak-services.ts';

export type Kill = {
  /** Milliseconds since the soak started. */
  at: number;
  name: string;
  kind: ServiceKind;
  pid: number | undefined;
  /** How long it was left down, as drawn. */
  downMs: number;
  /** From the kill until it was ready again. */
  backAfterMs?: number;
};

export type ChaosOptions = {
  rng: Rng;
  victims: readonly Managed[];
  gapS: Range;
  downS: Range;
  signal: AbortSignal;
  now(): number;
  /**
   * Awaited before a victim is killed: false skips this kill (e.g. a nats-server while a replica is still behind:
   * a second failure in an R3 group is more than it is built to survive). The round then passes without a kill.
   */
  beforeKill?(victim: Managed): Promise<boolean>;
  onKill(k: Kill): void;
  onBack(k: Kill): void;
};

const sleep = async (ms: number, signal?: AbortSignal): Promise<boolean> => {
  try {
    await delay(ms, undefined, signal ? { signal } : {});
    return true;
  } catch {
    return false;
  }
};

/**
 * kill -9 one service at a time and start it again, until `signal` aborts. The victim's kind, the victim, the gap
 * before the kill and the time it stays down are drawn from `rng`, four draws per kill in that order, so a seed
 * gives the same sequence of choices on every run (the moments shift with the machine's speed, the choices do not).
 * A killed victim is always started again, even when the signal aborts while it is down.
 */
export async function runChaos(o: ChaosOptions): Promise<Kill[]> {
  const kills: Kill[] = [];
  const kinds = serviceKinds.filter((k) => o.victims.some((v) => v.kind === k));
  if (kinds.length === 0) return kills;
  while (!o.signal.aborted) {
    const kind = o.rng.pick(kinds);
    const victim = o.rng.pick(o.victims.filter((v) => v.kind === kind));
    const gapMs = o.rng.between(o.gapS.min, o.gapS.max) * 1000;
    const downMs = o.rng.between(o.downS.min, o.downS.max) * 1000;
    if (!(await sleep(gapMs, o.signal))) break;
    const go = (await o.beforeKill?.(victim)) ?? true;
    if (o.signal.aborted) break;
    if (!go) continue;
    const at = o.now();
    const k: Kill = { at, name: victim.name, kind, pid: await victim.kill9(), downMs: Math.round(downMs) };
    kills.push(k);
    o.onKill(k);
    await sleep(downMs);
    await victim.start();
    k.backAfterMs = o.now() - at;
    o.onBack(k);
  }
  return kills;
}
