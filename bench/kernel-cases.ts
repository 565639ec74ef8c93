// The kernel cases timed both on Node (bench/browser.ts) and in the browser
// (bench/browser-page.ts): the same code, the same kernels, the same shapes.
import { matmul, scope } from '../engine/index.ts';
import { filled } from './fill.ts';
import { time } from './timing.ts';
import type { Timing } from './timing.ts';
import { conv2d } from '../engine/index.ts';

export interface KernelCase {
  name: string;
  op: string;
  flops: number;
  /** Allocates inputs; returns the function to time and a disposer. */
  setup(): { run: () => void; dispose: () => void };
}

function matmulCase(n: number): KernelCase {
  return {
    name: `matmul ${n}x${n} @ ${n}x${n}`, op: 'matmul', flops: 2 * n * n * n,
    setup() {
      const a = filled([n, n], 1);
      const b = filled([n, n], 2);
      return { run: () => scope(() => { matmul(a, b); }), dispose: () => { a.dispose(); b.dispose(); } };
    },
  };
}

function convCase(N: number, C: number, H: number): KernelCase {
  return {
    name: `conv2d_fwd ${N}x${C}x${H}x${H} k3 -> ${C}`, op: 'conv2d_fwd', flops: 2 * N * C * H * H * C * 9,
    setup() {
      const x = filled([N, C, H, H], 1);
      const w = filled([C, C, 3, 3], 2);
      return { run: () => scope(() => { conv2d(x, w, null, { padding: 1 }); }), dispose: () => { x.dispose(); w.dispose(); } };
    },
  };
}

/** The cases (with `only`, those whose name contains it). */
export function kernelCases(quick: boolean, only?: string): KernelCase[] {
  const all = quick ? [matmulCase(256), convCase(8, 64, 32)] : [matmulCase(256), matmulCase(512), convCase(8, 64, 32), convCase(32, 16, 28)];
  return all.filter((c) => only === undefined || c.name.includes(only));
}

/** Median, min and max milliseconds of `runs` timed runs after one warm-up, to GPU completion. */
export async function timeCase(c: KernelCase, runs: number): Promise<Timing> {
  const { run, dispose } = c.setup();
  const t = await time(run, runs);
  dispose();
  return t;
}
