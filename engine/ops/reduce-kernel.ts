// The reduction kernel (shaders/reduce.wgsl) without autograd: sum, max or min over any set of
// axes, and `sumTo`, which folds a broadcast gradient back to an operand's shape. Both the
// differentiable reductions (reduce.ts) and the element-wise ops' backward (elementwise.ts) use
// it, so it depends on neither.
import source from '../../shaders/reduce.wgsl';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { contiguousStrides, shapeString, sizeOf } from '../shapes.ts';
import type { Shape } from '../shapes.ts';
import { Tensor } from '../tensor.ts';

export type ReduceKind = 'sum' | 'max' | 'min';

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

/** Reduce `x` over `axes` (normalized), times `scale`, into a new tensor of `outShape`. */
export function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[], scale: number, outShape: Shape): Tensor {
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

/** Sum a broadcast gradient back to `shape` (the inverse of broadcasting). Returns `g` itself
 * when no reduction is needed. */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (shapeString(g.shape) === shapeString(shape)) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return reduceKernel('sum', g, axes, 1, shape);
}
