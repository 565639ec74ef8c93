// Float64 CPU references for the engine's ops, written independently of the engine: tests
// compare GPU results (and gradients) against these.
import type { Shape } from '../engine/index.ts';
import { rng, size } from './helpers.ts';

export function strides(shape: Shape): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i];
  }
  return out;
}

/** Coordinates of flat index `i` in `shape`. */
export function coords(i: number, shape: Shape): number[] {
  const c = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

/** NumPy broadcasting of two shapes (throws if incompatible). */
export function broadcastShape(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - (rank - a.length)] ?? 1;
    const db = b[i - (rank - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: cannot broadcast [${a}] and [${b}]`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Flat index into a tensor of `shape` for output coordinates `c` of a broadcast result. */
export function broadcastIndex(c: readonly number[], shape: Shape): number {
  const st = strides(shape);
  const lead = c.length - shape.length;
  let idx = 0;
  for (let d = 0; d < shape.length; d++) if (shape[d] !== 1) idx += c[d + lead] * st[d];
  return idx;
}

export function broadcastTo(x: ArrayLike<number>, xShape: Shape, shape: Shape): Float64Array {
  const out = new Float64Array(size(shape));
  for (let i = 0; i < out.length; i++) out[i] = x[broadcastIndex(coords(i, shape), xShape)];
  return out;
}

export function binary(f: (a: number, b: number) => number, a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape): Float64Array {
  const shape = broadcastShape(aShape, bShape);
  const out = new Float64Array(size(shape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, shape);
    out[i] = f(a[broadcastIndex(c, aShape)], b[broadcastIndex(c, bShape)]);
  }
  return out;
}

export type ReduceKind = 'sum' | 'mean' | 'max' | 'min';

/** Normalized, sorted axes (undefined: all). */
export function axesOf(axes: number | readonly number[] | undefined, rank: number): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return list.map((a) => (a < 0 ? a + rank : a)).sort((x, y) => x - y);
}

/** Reduce over `axes`; the output is laid out over the kept axes in order (as keepDims). */
export function reduce(kind: ReduceKind, x: ArrayLike<number>, shape: Shape, axes: readonly number[]): Float64Array {
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const n = axes.reduce((k, a) => k * shape[a], 1);
  const out = new Float64Array(size(keptShape)).fill(kind === 'max' ? -Infinity : kind === 'min' ? Infinity : 0);
  for (let i = 0; i < x.length; i++) {
    const o = broadcastIndex(coords(i, shape), keptShape);
    if (kind === 'max') out[o] = Math.max(out[o], x[i]);
    else if (kind === 'min') out[o] = Math.min(out[o], x[i]);
    else out[o] += x[i];
  }
  if (kind === 'mean') for (let o = 0; o < out.length; o++) out[o] /= n;
  return out;
}

/** Gradient of max/min over `axes` (torch.amax semantics: shared equally among ties). */
export function extremumGrad(kind: 'max' | 'min', x: ArrayLike<number>, shape: Shape, axes: readonly number[], g: ArrayLike<number>): Float64Array {
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const y = reduce(kind, x, shape, axes);
  const ties = new Float64Array(y.length);
  for (let i = 0; i < x.length; i++) {
    const o = broadcastIndex(coords(i, shape), keptShape);
    if (x[i] === y[o]) ties[o]++;
  }
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const o = broadcastIndex(coords(i, shape), keptShape);
    out[i] = x[i] === y[o] ? g[o] / ties[o] : 0;
  }
  return out;
}

export function permute(x: ArrayLike<number>, shape: Shape, dims: readonly number[]): Float64Array {
  const outShape = dims.map((d) => shape[d]);
  const st = strides(shape);
  const out = new Float64Array(x.length);
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, outShape);
    let src = 0;
    for (let d = 0; d < dims.length; d++) src += c[d] * st[dims[d]];
    out[i] = x[src];
  }
  return out;
}

/** x[begin:end] per axis (begin/end already resolved to non-negative bounds). */
export function slice(x: ArrayLike<number>, shape: Shape, begin: readonly number[], end: readonly number[]): Float64Array {
  const outShape = shape.map((_, d) => end[d] - begin[d]);
  const st = strides(shape);
  const out = new Float64Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, outShape);
    let src = 0;
    for (let d = 0; d < shape.length; d++) src += (c[d] + begin[d]) * st[d];
    out[i] = x[src];
  }
  return out;
}

export function concat(xs: readonly ArrayLike<number>[], shapes: readonly Shape[], axis: number): Float64Array {
  const outShape = [...shapes[0]];
  outShape[axis] = shapes.reduce((n, s) => n + s[axis], 0);
  const out = new Float64Array(size(outShape));
  for (let i = 0; i < out.length; i++) {
    const c = coords(i, outShape);
    let k = 0;
    let at = c[axis];
    while (at >= shapes[k][axis]) at -= shapes[k++][axis];
    const cc = [...c];
    cc[axis] = at;
    out[i] = xs[k][broadcastIndex(cc, shapes[k])];
  }
  return out;
}

/** Batched matmul with optional transposes; a plain matrix on either side is shared by the batch. */
export function matmul(a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape, transA = false, transB = false): { out: Float64Array; shape: number[] } {
  const [ar, ac] = aShape.slice(-2);
  const [br, bc] = bShape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) throw new Error('reference matmul: inner dimensions differ');
  const batchA = aShape.slice(0, -2);
  const batchB = bShape.slice(0, -2);
  const batchShape = batchA.length > 0 ? batchA : batchB;
  const batch = size(batchShape);
  const out = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    const oa = batchA.length > 0 ? z * M * K : 0;
    const ob = batchB.length > 0 ? z * K * N : 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[oa + k * M + i] : a[oa + i * K + k];
          const bv = transB ? b[ob + j * K + k] : b[ob + k * N + j];
          s += av * bv;
        }
        out[z * M * N + i * N + j] = s;
      }
    }
  }
  return { out, shape: [...batchShape, M, N] };
}

/** Uniform values with |v| in [lo, hi) and a random sign, rounded to f32: keeps away from 0. */
export function awayFromZero(shape: Shape, seed: number, lo: number, hi: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: size(shape) }, () => Math.fround((r() < 0.5 ? -1 : 1) * (lo + (hi - lo) * r())));
}

/** Distinct values at least `step` apart, in random order (no ties, no near-ties). */
export function distinct(shape: Shape, seed: number, step = 0.01): Float64Array {
  const n = size(shape);
  const r = rng(seed);
  const v = Array.from({ length: n }, (_, i) => (i - n / 2) * step);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j], v[i]];
  }
  return Float64Array.from(v, Math.fround);
}

/** Random integers in [lo, hi]. */
export function randomInts(shape: Shape, seed: number, lo: number, hi: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: size(shape) }, () => lo + Math.floor(r() * (hi - lo + 1)));
}

/** A fast reducer for finite differences: the output index of every input element is computed once. */
export function reducer(kind: ReduceKind, shape: Shape, axes: readonly number[]): (x: ArrayLike<number>) => Float64Array {
  const keptShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const outSize = size(keptShape);
  const n = size(shape) / outSize;
  const map = Int32Array.from({ length: size(shape) }, (_, i) => broadcastIndex(coords(i, shape), keptShape));
  return (x) => {
    const out = new Float64Array(outSize).fill(kind === 'max' ? -Infinity : kind === 'min' ? Infinity : 0);
    for (let i = 0; i < map.length; i++) {
      const o = map[i];
      if (kind === 'max') out[o] = Math.max(out[o], x[i]);
      else if (kind === 'min') out[o] = Math.min(out[o], x[i]);
      else out[o] += x[i];
    }
    if (kind === 'mean') for (let o = 0; o < outSize; o++) out[o] /= n;
    return out;
  };
}
