// Shape ops: reshape (a view, no copy), permute/transpose, slice and concat (strided copies
// through the element-wise kernel, bit-exact for any dtype).
import { record } from '../autograd.ts';
import { contiguousStrides, normalizeAxes } from '../shapes.ts';
import type { Shape } from '../shapes.ts';
import { Tensor } from '../tensor.ts';
import { mapKernel } from './elementwise.ts';

export function reshape(x: Tensor, shape: Shape): Tensor {
  const y = x.view(shape);
  return record(y, 'reshape', [x], (g) => [g.view(x.shape)]);
}

export function flatten(x: Tensor, startDim = 1): Tensor {
  return reshape(x, [...x.shape.slice(0, startDim), -1]);
}

/** Copy `src` (read with `srcStrides` from `srcOffset`) into `dst` over `iterShape`. */
function stridedCopy(iterShape: Shape, src: Tensor, srcOffset: number, srcStrides: readonly number[], dst: Tensor, dstOffset: number, dstStrides: readonly number[], name: string): void {
  mapKernel({
    name, expr: 'a', type: 'u32', iterShape,
    a: { tensor: src, offset: srcOffset, strides: srcStrides },
    out: { tensor: dst, offset: dstOffset, strides: dstStrides },
  });
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const axes = dims.map((d) => (d < 0 ? d + x.ndim : d));
  if (axes.length !== x.ndim || normalizeAxes(dims, x.ndim, 'permute').some((a, i) => a !== i)) {
    throw new RangeError(`permute: [${dims.join(', ')}] is not a permutation of the ${x.ndim} axes of ${x.describe()}`);
  }
  const shape = axes.map((a) => x.shape[a]);
  const inStrides = contiguousStrides(x.shape);
  const y = Tensor.empty(shape, x.dtype);
  stridedCopy(shape, x, 0, axes.map((a) => inStrides[a]), y, 0, contiguousStrides(shape), 'permute');
  const inverse = axes.map((_, i) => axes.indexOf(i));
  return record(y, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** Swap two axes (default: the last two). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const [a, b] = [dim0 < 0 ? dim0 + x.ndim : dim0, dim1 < 0 ? dim1 + x.ndim : dim1];
  if (a < 0 || b < 0 || a >= x.ndim || b >= x.ndim) throw new RangeError(`transpose: axes ${dim0}, ${dim1} out of range for ${x.describe()}`);
  const dims = [...x.shape.keys()];
  [dims[a], dims[b]] = [dims[b], dims[a]];
  return permute(x, dims);
}

/** `x[start0:end0, start1:end1, ...]` over the given ranges (missing trailing axes are whole);
 * `end` may be negative (from the end) or omitted. */
export function slice(x: Tensor, starts: readonly number[], ends?: readonly (number | undefined)[]): Tensor {
  if (starts.length > x.ndim) throw new RangeError(`slice: ${starts.length} ranges for ${x.describe()}`);
  const begin = x.shape.map((d, i) => {
    const s = starts[i] ?? 0;
    return s < 0 ? s + d : s;
  });
  const finish = x.shape.map((d, i) => {
    const e = ends?.[i];
    return e === undefined ? d : e < 0 ? e + d : e;
  });
  begin.forEach((b, i) => {
    if (b < 0 || finish[i] > x.shape[i] || b > finish[i]) {
      throw new RangeError(`slice: range ${starts[i] ?? 0}:${ends?.[i] ?? ''} of axis ${i} is out of bounds for ${x.describe()}`);
    }
  });
  const shape = begin.map((b, i) => finish[i] - b);
  const strides = contiguousStrides(x.shape);
  const offset = begin.reduce((o, b, i) => o + b * strides[i], 0);
  const y = Tensor.empty(shape, x.dtype);
  stridedCopy(shape, x, offset, strides, y, 0, contiguousStrides(shape), 'slice');
  return record(y, 'slice', [x], (g) => {
    const gx = Tensor.zeros(x.shape);
    stridedCopy(shape, g, 0, contiguousStrides(shape), gx, offset, strides, 'sliceBackward');
    return [gx];
  });
}

export function concat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new RangeError('concat: no tensors given');
  const first = tensors[0];
  const ax = axis < 0 ? axis + first.ndim : axis;
  if (ax < 0 || ax >= first.ndim) throw new RangeError(`concat: axis ${axis} out of range for ${first.describe()}`);
  for (const t of tensors) {
    if (t.dtype !== first.dtype) throw new TypeError(`concat: dtype mismatch, ${t.describe()} vs ${first.describe()}`);
    if (t.ndim !== first.ndim || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new RangeError(`concat: ${t.describe()} does not match ${first.describe()} outside axis ${ax}`);
    }
  }
  const shape = [...first.shape];
  shape[ax] = tensors.reduce((n, t) => n + t.shape[ax], 0);
  const y = Tensor.empty(shape, first.dtype);
  const outStrides = contiguousStrides(shape);
  let at = 0;
  const starts: number[] = [];
  for (const t of tensors) {
    starts.push(at);
    stridedCopy(t.shape, t, 0, contiguousStrides(t.shape), y, at * outStrides[ax], outStrides, 'concat');
    at += t.shape[ax];
  }
  return record(y, 'concat', [...tensors], (g) =>
    tensors.map((t, k) => {
      if (!t.requiresGrad) return null;
      const s = new Array<number>(shape.length).fill(0);
      const e: (number | undefined)[] = new Array(shape.length).fill(undefined);
      s[ax] = starts[k];
      e[ax] = starts[k] + t.shape[ax];
      return slice(g, s, e);
    }));
}


/** Reverse the order of elements along `dims` (PyTorch's `flip`). The copy walks the input
 * with negative strides; u32 index arithmetic wraps, so the sums come out exact. */
export function flip(x: Tensor, dims: readonly number[]): Tensor {
  const axes = normalizeAxes(dims, x.ndim, 'flip');
  const strides = contiguousStrides(x.shape);
  let offset = 0;
  const srcStrides = strides.map((s, d) => {
    if (!axes.includes(d) || x.shape[d] === 0) return s;
    offset += (x.shape[d] - 1) * s;
    return -s;
  });
  const y = Tensor.empty(x.shape, x.dtype);
  stridedCopy(x.shape, x, offset, srcStrides, y, 0, strides, 'flip');
  return record(y, 'flip', [x], (g) => [flip(g, axes)]);
}
