// The compute ceiling of the browser benchmark (shaders/ceiling.wgsl): chains of multiply-adds
// with no loads (`fmaCeiling`) and the same chains fed by per-lane storage loads
// (`fmaLoadCeiling`), in a few shapes, so that each adapter's best can be found in the same run
// as the cases measured against it (bench/kernel-cases.ts).
import source from '../shaders/ceiling.wgsl';
import { declareKernels, grid1d, launch } from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';

const kernels = declareKernels({
  name: 'ceiling',
  source,
  params: { iters: 'u32', m: 'f32', c: 'f32', mask: 'u32' },
  defines: { T: 'type', WG: 'u32', LOADS: 'u32', DECLARE: 'code', STEP: 'code', LOAD_STEP: 'code', SUM: 'code' },
  entryPoints: {
    fma: { outputs: { Out: 'T' } },
    fmaLoad: { inputs: { X: 'T' }, outputs: { Y: 'T' } },
  },
});

export interface FmaShape {
  /** Independent accumulators an invocation carries (each a dependency chain). */
  acc: number;
  /** 1: f32 accumulators; 4: vec4<f32>. */
  width: 1 | 4;
  /** Invocations per workgroup. */
  wg: number;
  /** fma only: the chains' steps repeated this many times per loop turn (default 1). */
  unroll?: number;
  /** fmaLoad only: values loaded per loop turn (acc / loads multiply-adds share each load). */
  loads?: number;
}

/** Elements of the load kernels' input: a power of two (the index is masked), 256 KiB of vec4s. */
export const LOAD_INPUT_ELEMENTS = 1 << 14;

export function describeShape(s: FmaShape): string {
  const what = `${s.width === 4 ? 'vec4' : 'f32'} x${s.acc}${(s.unroll ?? 1) > 1 ? ` unrolled x${s.unroll}` : ''} wg${s.wg}`;
  return s.loads === undefined ? what : `${what}, 1 load per ${s.acc / s.loads} multiply-adds`;
}

/** Floating-point operations of one launch (a multiply-add counts 2). */
export function fmaFlops(s: FmaShape, invocations: number, iters: number): number {
  return 2 * s.width * s.acc * (s.unroll ?? 1) * invocations * iters;
}

function defines(s: FmaShape, invocations: number) {
  // The kernel indexes by gid.x alone: a 1-D grid of whole workgroups.
  if (invocations % s.wg !== 0 || invocations / s.wg > 65535) throw new RangeError(`ceiling: ${invocations} invocations are not a 1-D grid of whole workgroups of ${s.wg}`);
  const loads = s.loads ?? 1;
  if (!(s.acc >= 1 && loads >= 1 && s.acc % loads === 0)) throw new RangeError(`ceiling: ${s.acc} accumulators cannot share ${loads} loads evenly`);
  const T = s.width === 4 ? 'vec4<f32>' : 'f32';
  const ks = Array.from({ length: s.acc }, (_, k) => k);
  // Different starting values (lane, accumulator, component), so no two chains are one expression.
  const start = (k: number) => (s.width === 4 ? `vec4<f32>(lane, lane + 0.25, lane + 0.5, lane + 0.75) + ${k / 64}` : `lane + ${k / 64}`);
  return {
    T, WG: s.wg, LOADS: loads,
    DECLARE: ks.map((k) => `var a${k}: T = ${start(k)};`).join('\n  '),
    STEP: Array.from({ length: s.unroll ?? 1 }, () => ks.map((k) => `a${k} = a${k} * p.m + p.c;`)).flat().join('\n    '),
    LOAD_STEP: [
      ...Array.from({ length: loads }, (_, j) => `let x${j} = X[(at + ${j}u) & p.mask];`),
      ...ks.map((k) => `a${k} = x${k % loads} * p.m + a${k};`),
    ].join('\n    '),
    SUM: ks.map((k) => `a${k}`).join(' + '),
  };
}

/** m and c keep every chain near 1 (a = a * m + c has its fixed point at c / (1 - m)): no
 * overflow, no denormals. */
const M = 1 - 1 / 1024;
const C = 1 / 1024;

/** Enqueue `invocations` invocations of `iters` turns of the pure multiply-add chains;
 * `out` holds one element of the shape's type per invocation. */
export function fmaCeiling(s: FmaShape, invocations: number, iters: number, out: Tensor): void {
  if (out.size < invocations * s.width) throw new RangeError(`fmaCeiling: ${out.describe()} is smaller than ${invocations} x ${s.width} floats`);
  launch(kernels.fma, {
    label: `ceiling fma ${describeShape(s)}`,
    params: { iters, m: M, c: C, mask: 0 }, defines: defines(s, invocations),
    inputs: {}, outputs: { Out: out },
    workgroups: grid1d(invocations, s.wg),
  });
}

/** As `fmaCeiling`, each multiply-add fed by a per-lane load from `x` (LOAD_INPUT_ELEMENTS
 * elements of the shape's type). */
export function fmaLoadCeiling(s: FmaShape, invocations: number, iters: number, x: Tensor, out: Tensor): void {
  if (out.size < invocations * s.width || x.size !== LOAD_INPUT_ELEMENTS * s.width) {
    throw new RangeError(`fmaLoadCeiling: ${x.describe()} -> ${out.describe()} for ${invocations} invocations of ${describeShape(s)}`);
  }
  launch(kernels.fmaLoad, {
    label: `ceiling fmaLoad ${describeShape(s)}`,
    params: { iters, m: M, c: C, mask: LOAD_INPUT_ELEMENTS - 1 }, defines: defines(s, invocations),
    inputs: { X: x }, outputs: { Y: out },
    workgroups: grid1d(invocations, s.wg),
  });
}
