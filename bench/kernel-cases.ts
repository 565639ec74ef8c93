// The kernel cases timed both on Node (bench/browser.ts) and in the browser
// (bench/browser-page.ts): the same code, the same kernels, the same shapes.
import { Tensor, engine, matmul, relu, scope } from '../engine/index.ts';
import { LOAD_INPUT_ELEMENTS, describeShape, fmaCeiling, fmaFlops, fmaLoadCeiling } from './ceiling-kernel.ts';
import type { FmaShape } from './ceiling-kernel.ts';
import { streamCopy } from './stream-kernel.ts';
import { filled } from './fill.ts';
import { stats, time } from './timing.ts';
import type { Timing } from './timing.ts';
import { conv2d, conv2dGeometry, conv2dInputGrad, forceVariant } from '../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../ssql/train.ts';
import type { ModelName } from '../ssql/train.ts';

export interface KernelCase {
  name: string;
  op: string;
  flops: number;
  /** Images a run processes (training steps: the rate is images/s, not FLOP/s). */
  images?: number;
  /** Bytes a run reads plus writes (the memory ceilings: the rate is GB/s). */
  bytes?: number;
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

/** `unrolled`: conv2d with its 'unrolled' design forced (the rule's pick on SwiftShader), to
 * compare with the design conv2d picks on the adapter. */
function convCase(N: number, C: number, H: number, unrolled = false): KernelCase {
  return {
    name: `conv2d_fwd ${N}x${C}x${H}x${H} k3 -> ${C}${unrolled ? ' (unrolled kernel)' : ''}`, op: 'conv2d_fwd', flops: 2 * N * C * H * H * C * 9,
    setup() {
      const x = filled([N, C, H, H], 1);
      const w = filled([C, C, 3, 3], 2);
      const conv = () => scope(() => { conv2d(x, w, null, { padding: 1 }); });
      const run = unrolled
        ? () => {
          forceVariant('conv2d.forward', 'unrolled');
          try { conv(); } finally { forceVariant('conv2d.forward', null); }
        }
        : conv;
      return { run, dispose: () => { x.dispose(); w.dispose(); } };
    },
  };
}

/** The input gradient of a k3 s2 p1 conv from [N, Cin, H, H] to Cout channels (a transposed
 * conv: the ResNet downsampling blocks' backward) with one design forced, to compare them. */
function convInputGradCase(N: number, Cin: number, H: number, Cout: number, design: 'register' | 'unrolled'): KernelCase {
  const OH = Math.floor((H - 1) / 2) + 1;
  return {
    name: `conv2d_dx ${N}x${Cout}x${OH}x${OH} k3 s2 -> ${N}x${Cin}x${H}x${H} (${design} kernel)`, op: 'conv2d_dx', flops: 2 * N * Cout * OH * OH * Cin * 9,
    setup() {
      const gy = filled([N, Cout, OH, OH], 1);
      const w = filled([Cout, Cin, 3, 3], 2);
      const x = filled([N, Cin, H, H], 3);
      const g = conv2dGeometry(x, w, { stride: 2, padding: 1 });
      x.dispose();
      const run = () => {
        forceVariant('conv2d.inputGrad', design);
        try { scope(() => { conv2dInputGrad(gy, w, g); }); } finally { forceVariant('conv2d.inputGrad', null); }
      };
      return { run, dispose: () => { gy.dispose(); w.dispose(); } };
    },
  };
}

/** `count` tiny element-wise dispatches in a row, each reading the one before: what a dispatch
 * costs on the adapter when its kernel does next to nothing (no rate: compare the times). */
function dispatchCase(count: number): KernelCase {
  return {
    name: `${count} dispatches of relu f32[64]`, op: 'dispatch', flops: 0,
    setup() {
      const a = filled([64], 1);
      return { run: () => scope(() => { let x = a; for (let i = 0; i < count; i++) x = relu(x); }), dispose: () => { a.dispose(); } };
    },
  };
}

// ---- the adapter's ceilings (docs/benchmarks.md#ceilings) -------------------------------------

/** Invocations of the ceiling kernels: 64-256 workgroups, plenty for two cores. */
const CEILING_INVOCATIONS = 16384;

/** The multiply-add chains of shaders/ceiling.wgsl, no loads: the op 'fma_ceiling' cases, whose
 * best on an adapter is that adapter's compute ceiling. About 1 GFLOP a run. */
function fmaCeilingCase(s: FmaShape): KernelCase {
  const iters = Math.round(2 ** 30 / fmaFlops(s, CEILING_INVOCATIONS, 1));
  return {
    name: `ceiling fma ${describeShape(s)}`, op: 'fma_ceiling', flops: fmaFlops(s, CEILING_INVOCATIONS, iters),
    setup() {
      const out = Tensor.zeros([CEILING_INVOCATIONS * s.width]);
      return { run: () => fmaCeiling(s, CEILING_INVOCATIONS, iters, out), dispose: () => out.dispose() };
    },
  };
}

/** The same chains with every multiply-add fed by a per-lane storage load: how far loads pull
 * the adapter below its ceiling. About 0.25 GFLOP a run. */
function fmaLoadCase(s: FmaShape): KernelCase {
  const iters = Math.round(2 ** 28 / fmaFlops(s, CEILING_INVOCATIONS, 1));
  return {
    name: `ceiling fma+load ${describeShape(s)}`, op: 'fma_load', flops: fmaFlops(s, CEILING_INVOCATIONS, iters),
    setup() {
      const x = filled([LOAD_INPUT_ELEMENTS * s.width], 4);
      const out = Tensor.zeros([CEILING_INVOCATIONS * s.width]);
      return { run: () => fmaLoadCeiling(s, CEILING_INVOCATIONS, iters, x, out), dispose: () => { x.dispose(); out.dispose(); } };
    },
  };
}

/** Floats of the memory ceilings' buffers: 32 MiB, past the caches. */
const CEILING_FLOATS = 8 << 20;

/** The memory ceiling: a copyBufferToBuffer or the streaming kernel (shaders/stream.wgsl) over
 * 32 MiB; GB/s counts the bytes read and those written. */
function memoryCeilingCase(how: 'copyBufferToBuffer' | 'stream kernel'): KernelCase {
  return {
    name: `ceiling ${how} ${(4 * CEILING_FLOATS) >> 20} MiB`, op: how === 'stream kernel' ? 'stream' : 'copy', flops: 0, bytes: 8 * CEILING_FLOATS,
    setup() {
      const src = filled([CEILING_FLOATS], 5);
      const dst = Tensor.zeros([CEILING_FLOATS]);
      const run = how === 'stream kernel'
        ? () => streamCopy(src, dst, CEILING_FLOATS)
        : () => engine().copy(src.buffer, 0, dst.buffer, 0, 4 * CEILING_FLOATS);
      return { run, dispose: () => { src.dispose(); dst.dispose(); } };
    },
  };
}

/** The ceiling cases, run first (they are short). The fma shapes span what decides the rate on
 * the two adapters (measured 2026-12-03): unrolling the chains 2-8 times a loop turn (a turn's own
 * cost is large on both), f32 or vec4, workgroups of 64 or 256 (SwiftShader prefers 256). The
 * load cases have the shape of the first, unrolled nowhere, to compare with. */
function ceilingCases(quick: boolean): KernelCase[] {
  const fma: FmaShape[] = quick
    ? [{ acc: 8, width: 4, wg: 64 }, { acc: 8, width: 4, wg: 256, unroll: 4 }, { acc: 32, width: 1, wg: 64, unroll: 2 }]
    : [{ acc: 8, width: 4, wg: 64 }, { acc: 8, width: 4, wg: 64, unroll: 4 }, { acc: 8, width: 4, wg: 256, unroll: 4 }, { acc: 4, width: 4, wg: 256, unroll: 8 },
      { acc: 8, width: 1, wg: 64 }, { acc: 8, width: 1, wg: 256, unroll: 8 }, { acc: 32, width: 1, wg: 64, unroll: 2 }, { acc: 32, width: 1, wg: 256, unroll: 2 }];
  const load: FmaShape[] = [{ acc: 8, width: 4, wg: 64, loads: 8 }, { acc: 8, width: 4, wg: 64, loads: 2 }];
  return [...fma.map(fmaCeilingCase), ...load.map(fmaLoadCase), memoryCeilingCase('copyBufferToBuffer'), memoryCeilingCase('stream kernel')];
}

/** Synthetic 28x28 grey images, seeded. */
function syntheticImages(count: number) {
  const images = new Uint8Array(count * 28 * 28);
  let s = 12345;
  for (let i = 0; i < images.length; i++) images[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return { images, labels: new Int32Array(count), count, channels: 1, height: 28, width: 28 };
}

/** One whole SSQL training step (ssql/train.ts Trainer.step: augmentation of two views, both
 * passes at a fresh bit pair, backward, SGD) of a ResNet on 28x28x1. */
function trainStepCase(model: ModelName, batch: number): KernelCase {
  return {
    name: `ssql step ${model} 1x28x28 batch ${batch}`, op: 'ssql_step', flops: 0, images: batch,
    setup() {
      const trainer = new Trainer({ ...DEFAULT_CONFIG, method: 'ssql', model, batchSize: batch, projDim: 128, predHidden: 32, epochs: 1000 }, syntheticImages(4 * batch));
      return {
        run: () => { const r = trainer.step(); for (const t of [r.loss, r.fp, r.quant]) t?.dispose(); },
        dispose: () => trainer.dispose(),
      };
    },
  };
}

/** The cases (with `only`, those whose name contains it). */
export function kernelCases(quick: boolean, only?: string): KernelCase[] {
  const all = [...ceilingCases(quick), ...(quick
    ? [matmulCase(256), convCase(8, 64, 32), convCase(8, 64, 32, true),
      convInputGradCase(8, 64, 32, 128, 'register'), convInputGradCase(8, 64, 32, 128, 'unrolled'), trainStepCase('tiny', 16), dispatchCase(500)]
    : [matmulCase(256), matmulCase(512), convCase(8, 64, 32), convCase(8, 64, 32, true), convCase(32, 16, 28), convCase(32, 16, 28, true),
      convInputGradCase(8, 64, 32, 128, 'register'), convInputGradCase(8, 64, 32, 128, 'unrolled'),
      convInputGradCase(32, 16, 28, 32, 'register'), convInputGradCase(32, 16, 28, 32, 'unrolled'),
      trainStepCase('tiny', 16), trainStepCase('small', 16), dispatchCase(500)])];
  return all.filter((c) => only === undefined || c.name.includes(only));
}

/** Profiled training steps per case: a family's figure is its median over these steps (one
 * profiled step let a single slow dispatch on a busy CPU triple a small family's share). */
const PROFILED_STEPS = 3;

/** Median, min and max milliseconds of `runs` timed runs after one warm-up, to GPU completion;
 * for a training step, then PROFILED_STEPS more runs, not timed, profiled: GPU milliseconds per
 * kernel family (timestamp queries, where the adapter has them), each family's median over
 * those steps. */
export async function timeCase(c: KernelCase, runs: number): Promise<Timing & { breakdown_ms?: Record<string, number>; breakdown_dispatches?: Record<string, number> }> {
  const { run, dispose } = c.setup();
  const t = await time(run, runs);
  const e = engine();
  let breakdown_ms: Record<string, number> | undefined;
  let breakdown_dispatches: Record<string, number> | undefined;
  if (c.images && e.device.features.has('timestamp-query')) {
    const perFamily = new Map<string, number[]>();
    // Dispatches a step per family: two sides' family times compare only where these agree
    // (Node's tuner may run a shape on another design than the browser's rules).
    const dispatches = new Map<string, number>();
    for (let i = 0; i < PROFILED_STEPS; i++) {
      e.startProfile();
      run();
      for (const [family, v] of await e.stopProfile()) {
        perFamily.set(family, [...(perFamily.get(family) ?? []), v.ms]);
        dispatches.set(family, Math.max(dispatches.get(family) ?? 0, v.count));
      }
    }
    breakdown_dispatches = Object.fromEntries(dispatches);
    // A family missing from a step counts 0 ms there.
    const median = (ms: number[]) => stats([...ms, ...new Array<number>(PROFILED_STEPS - ms.length).fill(0)]).median_ms;
    const profile = [...perFamily].map(([k, ms]) => [k, median(ms)] as const).sort((a, b) => b[1] - a[1]);
    breakdown_ms = Object.fromEntries(profile.map(([k, ms]) => [k, Number(ms.toFixed(2))]));
  }
  dispose();
  return { ...t, breakdown_ms, breakdown_dispatches };
}
