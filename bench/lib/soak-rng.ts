/**
 * Seeded choices: the same seed and label give the same sequence, whatever else runs. Each consumer (the chaos
 * loop, each CT's migrations) draws from its own sequence, so one's draws never shift another's.
 */
export type Rng = {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max]. */
  between(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
};

/** FNV-1a of the label mixed with the seed: a 32-bit start state per (seed, label). */
function stateOf(seed: number, label: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const c of label) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

/** mulberry32: small, fast, and good enough to choose victims and moments. */
export function createRng(seed: number, label: string): Rng {
  let a = stateOf(seed, label);
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    between: (min, max) => min + (max - min) * next(),
    pick(items) {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[Math.floor(next() * items.length)]!;
    },
    chance: (p) => next() < p,
  };
}
