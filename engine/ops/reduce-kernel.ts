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
import { referenceKernels } from './kernel-path.ts';

export type ReduceKind = 'sum' | 'max' | 'min';

const KINDS: Record<ReduceKind, { combine: string; identityBits: number }> = {
  sum: { combine: 'acc + v', identityBits: 0x00000000 },
  max: { combine: 'max(acc, v)', identityBits: 0xff800000 }, // -inf
  min: { combine: 'min(acc, v)', identityBits: 0x7f800000 }, // +inf
};

const MAX_DIMS = 8;
const WG = 64;

const kernels = declareKernels({
  name: 'reduce',
  source,
  params: {
    scale: 'f32',
    // passes over contiguous views
    outer: 'u32', len: 'u32', K: 'u32', chunks: 'u32', chunkLen: 'u32',
    // the general kernel
    outSize: 'u32', redSize: 'u32', keptRank: 'u32', redRank: 'u32',
    keptShape: `array<u32, ${MAX_DIMS}>`, keptStrides: `array<u32, ${MAX_DIMS}>`,
    redShape: `array<u32, ${MAX_DIMS}>`, redStrides: `array<u32, ${MAX_DIMS}>`,
  },
  defines: { COMBINE: 'code', IDENTITY_BITS: 'u32' },
  entryPoints: {
    rows: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
    rows4: { inputs: { X4: 'vec4<f32>' }, outputs: { Out: 'f32' } },
    cols: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
    cols4: { inputs: { X4: 'vec4<f32>' }, outputs: { Out4: 'vec4<f32>' } },
    perThread: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
    perGroup: { inputs: { X: 'f32' }, outputs: { Out: 'f32' } },
  },
});

/** Merge neighbouring dims of the same kind (kept or reduced) so kernels loop over fewer dims. */
function coalesce(shape: Shape, reduced: Set<number>): { kept: [number, number][]; red: [number, number][]; dims: [number, boolean][] } {
  const strides = contiguousStrides(shape);
  const kept: [number, number][] = [];
  const red: [number, number][] = [];
  const dims: [number, boolean][] = [];
  let prevKind: boolean | null = null;
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const isRed = reduced.has(d);
    const list = isRed ? red : kept;
    if (prevKind === isRed && list.length > 0) {
      const last = list[list.length - 1];
      last[0] *= shape[d];
      last[1] = strides[d];
      dims[dims.length - 1][0] *= shape[d];
    } else {
      list.push([shape[d], strides[d]]);
      dims.push([shape[d], isRed]);
    }
    prevKind = isRed;
  }
  return { kept, red, dims };
}

/** Invocations a pass should have before it is worth splitting a reduction into chunks. */
const TARGET_INVOCATIONS = 512;
/** The shortest chunk a split leaves an invocation (elements of a row, rows of a column). */
const MIN_ROW_CHUNK = 256;
const MIN_COL_CHUNK = 16;
/** A pass over fewer elements than this is not split: another dispatch costs more than one
 * invocation folding a longer run (the second pass of a split sum, a [64, 512] bias gradient). */
const MIN_SPLIT_ELEMENTS = 1 << 16;

/** Reduce `x` over `axes` (normalized), times `scale`, into a new tensor of `outShape`. */
export function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[], scale: number, outShape: Shape): Tensor {
  const out = Tensor.empty(outShape);
  const { kept, red, dims } = coalesce(x.shape, new Set(axes));
  if (kept.length > MAX_DIMS || red.length > MAX_DIMS) throw new RangeError(`${kind}: too many alternating kept/reduced axes in ${x.describe()}`);
  const label = `${kind} ${x.describe()} axes [${axes.join(', ')}]`;
  const defines = { COMBINE: KINDS[kind].combine, IDENTITY_BITS: KINDS[kind].identityBits };
  if (referenceKernels() || x.size === 0) {
    generalReduce(x, out, kept, red, scale, label, defines);
    return out;
  }
  // One pass per reduced dim, innermost first; each writes a contiguous tensor the next reads.
  let cur = x;
  let shape = dims;
  if (!shape.some(([, r]) => r)) shape = [...shape, [1, true]]; // nothing reduced: a copy times scale
  for (;;) {
    const i = shape.map(([, r]) => r).lastIndexOf(true);
    const n = shape[i][0];
    const outer = shape.slice(0, i).reduce((a, [d]) => a * d, 1);
    const K = shape.slice(i + 1).reduce((a, [d]) => a * d, 1);
    const inner = K === 1;
    const vec4 = inner ? n % 4 === 0 : K % 4 === 0;
    const lanes = inner ? outer : outer * (vec4 ? K / 4 : K);
    const minChunk = inner ? MIN_ROW_CHUNK : MIN_COL_CHUNK;
    const split = outer * n * K >= MIN_SPLIT_ELEMENTS;
    let chunks = split ? Math.max(1, Math.min(Math.ceil(TARGET_INVOCATIONS / lanes), Math.floor(n / minChunk))) : 1;
    let chunkLen = Math.ceil(n / chunks);
    if (inner && vec4) chunkLen = Math.ceil(chunkLen / 4) * 4;
    chunks = Math.ceil(n / chunkLen);
    const next: [number, boolean][] = [...shape.slice(0, i), ...(chunks > 1 ? [[chunks, true] as [number, boolean]] : []), ...shape.slice(i + 1)];
    const last = !next.some(([, r]) => r);
    const dst = last ? out : Tensor.empty([outer * chunks * K]);
    const params = {
      scale: last ? scale : 1, outer, len: n, K, chunks, chunkLen,
      outSize: 0, redSize: 0, keptRank: 0, redRank: 0, keptShape: [], keptStrides: [], redShape: [], redStrides: [],
    };
    const passLabel = `${label} pass [${outer}, ${n}, ${K}]`;
    if (inner) {
      const workgroups = grid1d(outer * chunks, WG);
      if (vec4) launch(kernels.rows4, { label: passLabel, params, defines, workgroups, inputs: { X4: cur }, outputs: { Out: dst } });
      else launch(kernels.rows, { label: passLabel, params, defines, workgroups, inputs: { X: cur }, outputs: { Out: dst } });
    } else if (vec4) {
      launch(kernels.cols4, { label: passLabel, params, defines, workgroups: grid1d(outer * chunks * (K / 4), WG), inputs: { X4: cur }, outputs: { Out4: dst } });
    } else {
      launch(kernels.cols, { label: passLabel, params, defines, workgroups: grid1d(outer * chunks * K, WG), inputs: { X: cur }, outputs: { Out: dst } });
    }
    if (cur !== x) cur.dispose();
    if (last) return out;
    cur = dst;
    shape = mergeKept(next);
  }
}

/** Merge neighbouring kept dims (a pass that removes a reduced dim joins its neighbours). */
function mergeKept(dims: [number, boolean][]): [number, boolean][] {
  const out: [number, boolean][] = [];
  for (const [n, r] of dims) {
    const prev = out[out.length - 1];
    if (prev && !prev[1] && !r) prev[0] *= n;
    else out.push([n, r]);
  }
  return out;
}

/** The general kernel (the reference path): any coalesced dims, index arithmetic per step. */
function generalReduce(x: Tensor, out: Tensor, kept: [number, number][], red: [number, number][], scale: number, label: string, defines: { COMBINE: string; IDENTITY_BITS: number }): void {
  // Nothing reduced: one step of stride 0 over the single element.
  if (red.length === 0) red.push([1, 0]);
  const outSize = out.size;
  const redSize = red.reduce((n, [d]) => n * d, 1);
  // Long reductions get a workgroup per output; short ones an invocation per output.
  const perGroup = redSize >= 256 && outSize <= 65535 * 4;
  launch(perGroup ? kernels.perGroup : kernels.perThread, {
    label, defines,
    inputs: { X: x },
    outputs: { Out: out },
    params: {
      scale, outer: 0, len: 0, K: 0, chunks: 0, chunkLen: 0,
      outSize, redSize, keptRank: kept.length, redRank: red.length,
      keptShape: kept.map(([n]) => n), keptStrides: kept.map(([, s]) => s),
      redShape: red.map(([n]) => n), redStrides: red.map(([, s]) => s),
    },
    workgroups: perGroup ? grid1d(outSize, 1) : grid1d(outSize, WG),
  });
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
