import { AsyncLocalStorage } from 'node:async_hooks';

/*
 * How long a step spent inside host tools, so its result can say what part of the step was host work (toolMs) and
 * the core can tell the rest — the control overhead — apart. A measurement follows the step's async calls wherever
 * the tools are run from (the runner, the held dump), without passing a clock through every function.
 */
/** The step's tool time so far, and the tools running now (tools run at once count their union, not their sum). */
type Clock = { ms: number; running: number; since: number };
type Measurement = { clock: Clock; inTool: boolean };

const current = new AsyncLocalStorage<Measurement>();

/** Run a step and return its value with the wall time it spent inside host tools. */
export async function measureToolTime<T>(fn: () => Promise<T>): Promise<{ value: T; toolMs: number }> {
  const clock: Clock = { ms: 0, running: 0, since: 0 };
  const value = await current.run({ clock, inTool: false }, fn);
  // A tool still running when the step ends (one of several it started at once, after another failed) counts up
  // to now.
  const ms = clock.ms + (clock.running > 0 ? performance.now() - clock.since : 0);
  // To a tenth of a millisecond, rounded down: a step's tool time never exceeds its wall time, not even by rounding.
  return { value, toolMs: Math.floor(ms * 10) / 10 };
}

/**
 * Count `fn`'s wall time as host-tool time of the step being measured (nothing outside a measurement). A tool run
 * inside another one (the held dump's wait around criu) is counted once; tools run at the same time count the time
 * any of them ran, so a step's tool time never exceeds its wall time.
 */
export async function asToolTime<T>(fn: () => Promise<T>): Promise<T> {
  const m = current.getStore();
  if (!m || m.inTool) return fn();
  const { clock } = m;
  if (clock.running++ === 0) clock.since = performance.now();
  try {
    return await current.run({ clock, inTool: true }, fn);
  } finally {
    if (--clock.running === 0) clock.ms += performance.now() - clock.since;
  }
}
