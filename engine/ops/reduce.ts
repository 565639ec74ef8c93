// Reductions over any set of axes: sum, mean, max, min (PyTorch's `amax`/`amin` semantics:
// the gradient is shared equally among tied extrema).
import source from '../../shaders/reduce.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor, checkDtype, shapeString, sizeOf } from '../tensor.ts';
import type { Shape } from '../tensor.ts';
import { contiguousStrides, div, equal, expand, mul } from './elementwise.ts';
import { reshape } from './shape.ts';

type ReduceKind = 'sum' | 'max' | 'min';

const KINDS: Record<ReduceKind, { combine: string; identityBits: number }> = {
  sum: { combine: 'acc + v', identityBits: 0x00000000 },
  max: { combine: 'max(acc, v)', identityBits: 0xff800000 }, // -inf
  min: { combine: 'min(acc, v)', identityBits: 0x7f800000 }, // +inf
};

const MAX_DIMS = 8;

const kernels = declareKernels({
  name: 'reduce',
  source,
  params: {
    outSize: 'u32', redSize: 'u32', keptRank: 'u32', redRank: 'u32', scale: 'f32',
    keptShape: `array<u32, ${MAX_DIMS}>`, keptStrides: `array<u32, ${MAX_DIMS}>`,
    redShape: `array<u32, ${MAX_DIMS}>`, redStrides: `array<u32, ${MAX_DIMS}>`,
  },
  defines: { COMBINE: 'code', IDENTITY_BITS: 'u32' },
  entryPoints: {
    perThread: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
    perGroup: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
  },
});

/** Normalize an axis list (negative axes count from the end; undefined means all axes). */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(n) || n < 0 || n >= rank) throw new RangeError(`${op}: axis ${a} is out of range for a tensor of rank ${rank}`);
    return n;
  });
  if (new Set(out).size !== out.length) throw new RangeError(`${op}: repeated axis in [${list.join(', ')}]`);
  return out.sort((x, y) => x - y);
}

/** Merge neighbouring dims of the same kind (kept or reduced) so kernels loop over fewer dims. */
function coalesce(shape: Shape, reduced: Set<number>): { kept: [number, number][]; red: [number, number][] } {
  const strides = contiguousStrides(shape);
  const kept: [number, number][] = [];
  const red: [number, number][] = [];
  let prevKind: boolean | null = null;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const isRed = reduced.has(d);
    const list = isRed ? red : kept;
    if (prevKind === isRed && list.length > 0) {
      const last = list[list.length - 1];
      last[0] *= shape[d];
      last[1] = strides[d];
    } else {
      list.push([shape[d], strides[d]]);
    }
    prevKind = isRed;
  }
  return { kept, red };
}

function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[], scale: number, outShape: Shape): Tensor {
  const out = Tensor.empty(outShape);
  const { kept, red } = coalesce(x.shape, new Set(axes));
  if (kept.length > MAX_DIMS || red.length > MAX_DIMS) throw new RangeError(`${kind}: too many alternating kept/reduced axes in ${x.describe()}`);
  // Nothing reduced: one step of stride 0 over the single element.
  if (red.length === 0) red.push([1, 0]);
  const outSize = sizeOf(outShape);
  const redSize = red.reduce((n, [d]) => n * d, 1);
  // Long reductions get a workgroup per output; short ones an invocation per output.
  const perGroup = redSize >= 256 && outSize <= 65535 * 4;
  launch(perGroup ? kernels.perGroup : kernels.perThread, {
    label: `${kind} ${x.describe()} axes [${axes.join(', ')}]`,
    inputs: { X: x },
    outputs: { Out: out },
    params: {
      outSize, redSize, keptRank: kept.length, redRank: red.length, scale,
      keptShape: kept.map(([n]) => n), keptStrides: kept.map(([, s]) => s),
      redShape: red.map(([n]) => n), redStrides: red.map(([, s]) => s),
    },
    defines: { COMBINE: KINDS[kind].combine, IDENTITY_BITS: KINDS[kind].identityBits },
    workgroups: perGroup ? grid1d(outSize, 1) : grid1d(outSize, 64),
  });
  return out;
}

export interface ReduceOptions {
  keepDims?: boolean;
}

function reducedShapes(x: Tensor, axes: number[], keepDims: boolean): { outShape: number[]; keptShape: number[] } {
  const keptShape = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outShape = keepDims ? keptShape : x.shape.filter((_, i) => !axes.includes(i));
  return { outShape, keptShape };
}

function sumOrMean(op: 'sum' | 'mean', x: Tensor, axesArg: number | readonly number[] | undefined, opts: ReduceOptions): Tensor {
  checkDtype(op, 'f32', x);
  const axes = normalizeAxes(axesArg, x.ndim, op);
  const { outShape, keptShape } = reducedShapes(x, axes, opts.keepDims ?? false);
  const n = axes.reduce((k, a) => k * x.shape[a], 1);
  const scale = op === 'mean' ? 1 / n : 1;
  const y = reduceKernel('sum', x, axes, scale, outShape);
  return record(y, op, [x], (g) => {
    const gk = reshape(g, keptShape);
    const full = expand(gk, x.shape, scale);
    gk.dispose();
    return [full];
  });
}

export function sum(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return sumOrMean('sum', x, axes, opts);
}

export function mean(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return sumOrMean('mean', x, axes, opts);
}

function extremum(kind: 'max' | 'min', x: Tensor, axesArg: number | readonly number[] | undefined, opts: ReduceOptions): Tensor {
  checkDtype(kind, 'f32', x);
  const axes = normalizeAxes(axesArg, x.ndim, kind);
  const { outShape, keptShape } = reducedShapes(x, axes, opts.keepDims ?? false);
  const y = reduceKernel(kind, x, axes, 1, outShape);
  return record(y, kind, [x], (g) => {
    // d/dx = g * [x == y] / (number of ties), as torch.amax/amin.
    const yk = reshape(y, keptShape);
    const gk = reshape(g, keptShape);
    const mask = equal(x, yk);
    const ties = reduceKernel('sum', mask, axes, 1, keptShape);
    const share = div(gk, ties);
    const gx = mul(mask, share);
    for (const t of [yk, gk, mask, ties, share]) t.dispose();
    return [gx];
  });
}

export function max(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return extremum('max', x, axes, opts);
}

export function min(x: Tensor, axes?: number | readonly number[], opts: ReduceOptions = {}): Tensor {
  return extremum('min', x, axes, opts);
}

/** Sum a broadcast gradient back to `shape` (the inverse of broadcasting). Returns `g` itself
 * when no reduction is needed. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapeString(g.shape) === shapeString(shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = reduceKernel('sum', g, axes, 1, shape);
  return r;
}
