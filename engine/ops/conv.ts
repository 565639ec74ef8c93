// conv2d over NCHW tensors with PyTorch's weight layout [Cout, Cin, kH, kW] (so checkpoints
// interoperate). Forward, input gradient and weight gradient are each an implicit-GEMM kernel
// (shaders/conv.wgsl); 1x1 stride-1 unpadded convs are plain batched matmuls.
import source from '../../shaders/conv.wgsl';
import { noGrad, record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { add } from './elementwise.ts';
import { matmul } from './matmul.ts';
import { sum } from './reduce.ts';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

const bindings = { inputs: { In0: 'f32', In1: 'f32' }, outputs: { Out: 'f32' } } as const;

const kernels = declareKernels({
  name: 'conv2d',
  source,
  // The params are a ConvGeometry.
  params: {
    N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
    kH: 'u32', kW: 'u32', stride: 'u32', pad: 'u32',
  },
  defines: { KH: 'u32', KW: 'u32', STRIDE: 'u32', TC: 'u32', FLIPPED: 'bool', WG_X: 'u32', WG_Y: 'u32' },
  entryPoints: { forward: bindings, inputGrad: bindings, weightGrad: bindings },
});

export interface ConvGeometry {
  N: number; Cin: number; H: number; W: number;
  Cout: number; OH: number; OW: number;
  kH: number; kW: number; stride: number; pad: number;
}

export function conv2dGeometry(x: Tensor, weight: Tensor, opts: Conv2dOptions): ConvGeometry {
  checkDtype('conv2d', 'f32', x, weight);
  if (x.ndim !== 4) throw new RangeError(`conv2d: input must be NCHW (4 dims), got ${x.describe()}`);
  if (weight.ndim !== 4) throw new RangeError(`conv2d: weight must be [Cout, Cin, kH, kW], got ${weight.describe()}`);
  const [N, Cin, H, W] = x.shape;
  const [Cout, wCin, kH, kW] = weight.shape;
  if (wCin !== Cin) throw new RangeError(`conv2d: input has ${Cin} channels but weight ${weight.describe()} expects ${wCin}`);
  const stride = opts.stride ?? 1;
  const pad = opts.padding ?? 0;
  if (!Number.isInteger(stride) || stride < 1 || !Number.isInteger(pad) || pad < 0) {
    throw new RangeError(`conv2d: stride must be a positive integer and padding a non-negative integer (got ${stride}, ${pad})`);
  }
  const OH = Math.floor((H + 2 * pad - kH) / stride) + 1;
  const OW = Math.floor((W + 2 * pad - kW) / stride) + 1;
  if (OH < 1 || OW < 1) throw new RangeError(`conv2d: kernel ${kH}x${kW} does not fit input ${H}x${W} with padding ${pad}`);
  return { N, Cin, H, W, Cout, OH, OW, kH, kW, stride, pad };
}

function convKernel(entry: 'forward' | 'inputGrad' | 'weightGrad', g: ConvGeometry, in0: Tensor, in1: Tensor, outShape: number[], rows: number, cols: number, flipped = false): Tensor {
  const out = Tensor.empty(outShape);
  // Only the forward kernel is specialized on the window; the others share one pipeline each.
  const window = entry === 'forward'
    ? { KH: g.kH, KW: g.kW, STRIDE: g.stride, TC: forwardTileWidth(g.OW), FLIPPED: flipped }
    : { KH: 1, KW: 1, STRIDE: 1, TC: 8, FLIPPED: false };
  // 64 invocations, each 8 rows x 8 columns of the GEMM; at most as many rows as there are.
  const wgY = rows <= 8 ? 1 : rows <= 16 ? 2 : 4;
  const wgX = 64 / wgY;
  launch(kernels[entry], {
    label: `conv2d.${entry} ${in0.describe()}, ${in1.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}`,
    inputs: { In0: in0, In1: in1 },
    outputs: { Out: out },
    params: g,
    defines: { ...window, WG_X: wgX, WG_Y: wgY },
    workgroups: [Math.ceil(cols / (8 * wgX)), Math.ceil(rows / (8 * wgY)), 1],
  });
  return out;
}

/** Output columns per forward tile (8 / this many rows): narrow maps get narrow, tall tiles. */
function forwardTileWidth(OW: number): number {
  return OW > 4 ? 8 : OW > 2 ? 4 : OW;
}

const isPointwise = (g: ConvGeometry) => g.kH === 1 && g.kW === 1 && g.stride === 1 && g.pad === 0;

/** The convolution without autograd (forward kernel, or matmul for 1x1). */
/** `flipped`: `weight` is the [Cin, Cout, kH, kW] weight of the conv whose stride-1 input
 * gradient this computes; the kernel reads it transposed and rotated by 180 degrees. */
function conv2dForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped = false): Tensor {
  if (isPointwise(g) && !flipped) {
    // Y[n] = W[Cout, Cin] X[n][Cin, H*W]: NCHW makes this one batched matmul.
    const xv = x.view([g.N, g.Cin, g.H * g.W]);
    const wv = weight.view([g.Cout, g.Cin]);
    const y = matmul(wv, xv);
    const out = y.view([g.N, g.Cout, g.OH, g.OW]);
    for (const t of [xv, wv, y]) t.dispose();
    return out;
  }
  // Columns of the forward GEMM are tiles of TR x TC output pixels (8 in all).
  const tc = forwardTileWidth(g.OW);
  const tiles = g.N * Math.ceil(g.OH / (8 / tc)) * Math.ceil(g.OW / tc);
  return convKernel('forward', g, weight, x, [g.N, g.Cout, g.OH, g.OW], g.Cout, tiles * 8, flipped);
}

/** dL/dX from dL/dY. */
export function conv2dInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry): Tensor {
  if (isPointwise(g)) {
    const gv = gradOut.view([g.N, g.Cout, g.H * g.W]);
    const wv = weight.view([g.Cout, g.Cin]);
    const dx = matmul(wv, gv, { transA: true });
    const out = dx.view([g.N, g.Cin, g.H, g.W]);
    for (const t of [gv, wv, dx]) t.dispose();
    return out;
  }
  if (g.stride === 1 && g.pad <= g.kH - 1 && g.pad <= g.kW - 1 && g.kH === g.kW) {
    // Stride 1: the input gradient is a forward conv of dY with the transposed, flipped weight
    // and padding k-1-pad; the forward kernel reads the weight that way itself (no copy).
    const gt: ConvGeometry = { ...g, Cin: g.Cout, Cout: g.Cin, H: g.OH, W: g.OW, OH: g.H, OW: g.W, pad: g.kH - 1 - g.pad };
    return conv2dForward(gradOut, weight, gt, true);
  }
  // Columns: per image row, `stride` phases of ceil(ceil(W/stride)/8) tiles of 8 pixels.
  const tilesPerRow = Math.ceil(Math.ceil(g.W / g.stride) / 8) * g.stride;
  return convKernel('inputGrad', g, gradOut, weight, [g.N, g.Cin, g.H, g.W], g.Cin, g.N * g.H * tilesPerRow * 8);
}

/** dL/dW from dL/dY and X. */
export function conv2dWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry): Tensor {
  if (isPointwise(g) && g.N === 1) {
    const gv = gradOut.view([g.Cout, g.H * g.W]);
    const xv = x.view([g.Cin, g.H * g.W]);
    const dw = matmul(gv, xv, { transB: true });
    const out = dw.view([g.Cout, g.Cin, 1, 1]);
    for (const t of [gv, xv, dw]) t.dispose();
    return out;
  }
  return convKernel('weightGrad', g, gradOut, x, [g.Cout, g.Cin, g.kH, g.kW], g.Cout, g.Cin * g.kH * g.kW);
}

/** 2-D convolution (PyTorch's `F.conv2d` with integer stride and symmetric zero padding). */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const g = conv2dGeometry(x, weight, opts);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== g.Cout)) {
    throw new RangeError(`conv2d: bias must be [${g.Cout}], got ${bias.describe()}`);
  }
  let y = conv2dForward(x, weight, g);
  if (bias) {
    const b4 = bias.view([1, g.Cout, 1, 1]);
    // The bias add is part of this op's own backward (below), so it is not recorded separately.
    const yb = noGrad(() => add(y, b4));
    y.dispose();
    b4.dispose();
    y = yb;
  }
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(y, 'conv2d', inputs, (gy) => [
    x.requiresGrad ? conv2dInputGrad(gy, weight, g) : null,
    weight.requiresGrad ? conv2dWeightGrad(gy, x, g) : null,
    bias?.requiresGrad ? sum(gy, [0, 2, 3]) : null,
  ]);
}
