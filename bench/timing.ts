// Timing GPU work to completion (platform independent: the browser bench uses it too).
import { engine, tunePending, tuningEnabled } from '../engine/index.ts';

export interface Timing {
  median_ms: number;
  min_ms: number;
  max_ms: number;
  runs: number;
}

/** Milliseconds of one call of `fn` (which enqueues GPU work), to GPU completion. */
export async function sample(fn: () => void): Promise<number> {
  const t0 = performance.now();
  fn();
  await engine().sync();
  return performance.now() - t0;
}

export function stats(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  return { median_ms: s[Math.floor(s.length / 2)], min_ms: s[0], max_ms: s[s.length - 1], runs: s.length };
}

/** One warm-up call (compiles pipelines; with tuning on, the kernel variants of new shapes are
 * then measured and the choice kept, as training does), then `runs` timed calls. */
export async function time(fn: () => void, runs: number): Promise<Timing> {
  await sample(fn);
  if (tuningEnabled() && (await tunePending()).length > 0) await sample(fn);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) samples.push(await sample(fn));
  return stats(samples);
}
