// Reductions over any set of axes: sum, mean, max, min (PyTorch's `amax`/`amin` semantics:
// the gradient is shared equally among tied extrema).
import { record } from '../autograd.ts';
import { normalizeAxes } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { div, equal, expand, mul } from './elementwise.ts';
import { reduceKernel } from './reduce-kernel.ts';

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
    const gk = g.view(keptShape); // backward runs unrecorded: a view is the reshape
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
    const yk = y.view(keptShape);
    const gk = g.view(keptShape);
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
