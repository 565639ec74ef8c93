// 2-D pooling over NCHW tensors (PyTorch's avg_pool2d, max_pool2d, and global average pooling
// = adaptive_avg_pool2d(x, 1) flattened). Kernels in shaders/pooling.wgsl; each backward is a
// gather over the outputs covering an input element, so no atomics are needed.
// (engine/pool.ts is the buffer pool, unrelated.)
import source from '../../shaders/pooling.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor, checkDtype } from '../tensor.ts';

export interface Pool2dOptions {
  /** Default: the kernel size. */
  stride?: number | [number, number];
  /** Zero padding each side, at most half the kernel (as PyTorch). Default 0. */
  padding?: number | [number, number];
}

interface PoolGeometry {
  N: number; C: number; H: number; W: number; OH: number; OW: number;
  kH: number; kW: number; sH: number; sW: number; pH: number; pW: number;
}

const kernels = declareKernels({
  name: 'pooling',
  source,
  params: {
    planes: 'u32', H: 'u32', W: 'u32', OH: 'u32', OW: 'u32', kH: 'u32', kW: 'u32', sH: 'u32', sW: 'u32', pH: 'u32', pW: 'u32',
    size: 'u32', // invocations: outputs (forward) or inputs (backward)
    invArea: 'f32',
  },
  entryPoints: {
    avgForward: { inputs: { AX: 'f32' }, outputs: { AY: 'f32' } },
    maxForward: { inputs: { MX: 'f32' }, outputs: { MY: 'f32', MIdx: 'i32' } },
    avgBackward: { inputs: { BG: 'f32' }, outputs: { BDX: 'f32' } },
    maxBackward: { inputs: { XG: 'f32', XIdx: 'i32' }, outputs: { XDX: 'f32' } },
  },
});

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

function geometry(op: string, x: Tensor, kernel: number | [number, number], opts: Pool2dOptions): PoolGeometry {
  checkDtype(op, 'f32', x);
  if (x.ndim !== 4) throw new RangeError(`${op}: input must be NCHW (4 dims), got ${x.describe()}`);
  const [N, C, H, W] = x.shape;
  const [kH, kW] = pair(kernel);
  const [sH, sW] = pair(opts.stride ?? kernel);
  const [pH, pW] = pair(opts.padding ?? 0);
  for (const v of [kH, kW, sH, sW]) if (!Number.isInteger(v) || v < 1) throw new RangeError(`${op}: kernel and stride must be positive integers (kernel ${kH}x${kW}, stride ${sH}x${sW})`);
  if (!Number.isInteger(pH) || !Number.isInteger(pW) || pH < 0 || pW < 0 || 2 * pH > kH || 2 * pW > kW) {
    throw new RangeError(`${op}: padding ${pH}x${pW} must be between 0 and half the kernel ${kH}x${kW}`);
  }
  const OH = Math.floor((H + 2 * pH - kH) / sH) + 1;
  const OW = Math.floor((W + 2 * pW - kW) / sW) + 1;
  if (OH < 1 || OW < 1) throw new RangeError(`${op}: kernel ${kH}x${kW} does not fit input ${H}x${W} with padding ${pH}x${pW}`);
  return { N, C, H, W, OH, OW, kH, kW, sH, sW, pH, pW };
}

function params(g: PoolGeometry, size: number) {
  const { H, W, OH, OW, kH, kW, sH, sW, pH, pW } = g;
  return { planes: g.N * g.C, H, W, OH, OW, kH, kW, sH, sW, pH, pW, size, invArea: 1 / (kH * kW) };
}

function describe(op: string, x: Tensor, g: PoolGeometry): string {
  return `${op} ${x.describe()} k${g.kH}x${g.kW} s${g.sH}x${g.sW} p${g.pH}x${g.pW}`;
}

function avgPool(op: string, x: Tensor, g: PoolGeometry, outShape: number[]): Tensor {
  const y = Tensor.empty(outShape);
  const label = describe(op, x, g);
  launch(kernels.avgForward, { label, inputs: { AX: x }, outputs: { AY: y }, params: params(g, y.size), workgroups: grid1d(y.size, 256) });
  return record(y, op, [x], (gy) => {
    const dx = Tensor.empty(x.shape);
    launch(kernels.avgBackward, { label: `${label} backward`, inputs: { BG: gy }, outputs: { BDX: dx }, params: params(g, dx.size), workgroups: grid1d(dx.size, 256) });
    return [dx];
  });
}

/** avg_pool2d (count_include_pad=True, ceil_mode=False); stride defaults to the kernel size. */
export function avgPool2d(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  const g = geometry('avgPool2d', x, kernelSize, opts);
  return avgPool('avgPool2d', x, g, [g.N, g.C, g.OH, g.OW]);
}

/** Mean over H and W: (N, C, H, W) -> (N, C). */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.ndim !== 4) throw new RangeError(`globalAvgPool: input must be NCHW (4 dims), got ${x.describe()}`);
  const g = geometry('globalAvgPool', x, [x.shape[2], x.shape[3]], { stride: 1 });
  return avgPool('globalAvgPool', x, g, [g.N, g.C]);
}

/** max_pool2d (ceil_mode=False, dilation 1): gradient to the first maximum of each window. */
export function maxPool2d(x: Tensor, kernelSize: number | [number, number], opts: Pool2dOptions = {}): Tensor {
  const g = geometry('maxPool2d', x, kernelSize, opts);
  const y = Tensor.empty([g.N, g.C, g.OH, g.OW]);
  const idx = Tensor.empty(y.shape, 'i32');
  const label = describe('maxPool2d', x, g);
  launch(kernels.maxForward, { label, inputs: { MX: x }, outputs: { MY: y, MIdx: idx }, params: params(g, y.size), workgroups: grid1d(y.size, 256) });
  record(y, 'maxPool2d', [x], (gy) => {
    const dx = Tensor.empty(x.shape);
    launch(kernels.maxBackward, { label: `${label} backward`, inputs: { XG: gy, XIdx: idx }, outputs: { XDX: dx }, params: params(g, dx.size), workgroups: grid1d(dx.size, 256) });
    return [dx];
  });
  if (!y.node) idx.dispose();
  return y;
}
