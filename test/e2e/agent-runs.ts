import assert from 'node:assert/strict';
import { followToEnd } from '@haul/cli';
import type { CtWorld } from '@haul/test';
import type { MigrationEvent } from '@haul/schemas';

/** A step's outcomes (succeeded or failed) among a migration's events. */
export const outcomes = (events: MigrationEvent[]) =>
  events.filter((e) => e.type === 'StepSucceeded' || e.type === 'StepFailed');

/** A live migration of the world's CT (pre-dumps on, at most two), followed to its end: its id, end, events. */
export async function run(
  w: CtWorld,
  extra: Record<string, unknown> = {},
  onEvent: (e: MigrationEvent) => void = () => {},
) {
  const base = await w.baseline('node-a');
  const r = await w.migrate(`agent-${Date.now()}`, {
    preDump: 'on',
    maxIterations: 2,
    ...extra,
  });
  assert.ok(r.ok, JSON.stringify(r));
  if (!r.ok) throw new Error('rejected');
  const end = await followToEnd(w.eventLog, r.migrationId, onEvent);
  return { id: r.migrationId, end, base, events: await w.events(r.migrationId) };
}
