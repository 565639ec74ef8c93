// Batch normalization (PyTorch's F.batch_norm) over (N, C, ...) tensors, with an optional fused
// ReLU. Training: batch statistics (biased variance) normalize, and the running mean/var
// (unbiased variance) and num_batches_tracked are updated in place on the GPU. Eval: the running
// statistics normalize. Kernels in shaders/batchnorm.wgsl: two passes forward (per-channel
// statistics, then an element-wise normalize + affine [+ ReLU]), two backward (per-channel
// sum(dy) and sum(dy*xhat), then an element-wise pass).
import source from '../../shaders/batchnorm.wgsl';
import { record } from '../autograd.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor, shapeString } from '../tensor.ts';
import type { KernelSpec } from '../kernels.ts';

export interface BatchNormOptions {
  /** Normalize with batch statistics (and update the running ones). Default true. */
  training?: boolean;
  /** Running-average factor, PyTorch's convention: new = (1 - m)*old + m*batch. Default 0.1. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  /** Fuse a ReLU after the affine transform (forward and backward). Default false. */
  relu?: boolean;
  /** [C] f32, updated in place in training mode, read in eval mode. */
  runningMean?: Tensor | null;
  /** [C] f32, unbiased batch variance averaged in, as PyTorch. */
  runningVar?: Tensor | null;
  /** A one-element i32 tensor incremented in place on each training call with running stats. */
  numBatchesTracked?: Tensor | null;
}

const WG = 256;
const RELU = 1;
const TRAINING = 2;
const UPDATE = 4;

function kernel(entryPoint: string): KernelSpec {
  return { name: 'batchnorm', source, entryPoint };
}

function checkVector(what: string, t: Tensor | null | undefined, C: number, dtype: 'f32' | 'i32' = 'f32', size = C): void {
  if (!t) return;
  t.buffer;
  if (t.dtype !== dtype || t.size !== size) {
    throw new RangeError(`batchNorm: ${what} must be ${dtype} with ${size} element(s), got ${t.describe()}`);
  }
}

/**
 * y = (x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1) of x [N, C, ...].
 * `gamma`/`beta` may be null (affine false). Gradients flow to x, gamma and beta.
 */
export function batchNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  x.buffer;
  if (x.dtype !== 'f32') throw new TypeError(`batchNorm: expected an f32 input, got ${x.describe()}`);
  if (x.ndim < 2) throw new RangeError(`batchNorm: input must be [N, C, ...], got ${x.describe()}`);
  if ((gamma === null) !== (beta === null)) throw new TypeError('batchNorm: give both gamma and beta, or neither (affine false)');
  const training = opts.training ?? true;
  const momentum = opts.momentum ?? 0.1;
  const eps = opts.eps ?? 1e-5;
  const relu = opts.relu ?? false;
  const [N, C] = x.shape;
  const HW = x.shape.slice(2).reduce((n, d) => n * d, 1);
  const M = N * HW;
  checkVector('gamma', gamma, C);
  checkVector('beta', beta, C);
  checkVector('runningMean', opts.runningMean, C);
  checkVector('runningVar', opts.runningVar, C);
  checkVector('numBatchesTracked', opts.numBatchesTracked, C, 'i32', 1);
  if ((opts.runningMean == null) !== (opts.runningVar == null)) throw new TypeError('batchNorm: give both runningMean and runningVar, or neither');
  if (!training && !opts.runningMean) throw new TypeError('batchNorm: eval mode (training: false) needs runningMean and runningVar');
  if (training && M <= 1) throw new RangeError(`batchNorm: expected more than 1 value per channel when training, got input ${shapeString(x.shape)}`);

  const update = training && !!opts.runningMean;
  const flags = (relu ? RELU : 0) | (training ? TRAINING : 0) | (update ? UPDATE : 0);
  const u = new ArrayBuffer(64);
  const u32 = new Uint32Array(u);
  const f32 = new Float32Array(u);
  u32.set([N, C, HW, M, C * HW, Math.floor(WG / HW), WG % HW, x.size, flags]);
  f32[9] = eps;
  f32[10] = momentum;
  f32[11] = 1 / M;
  f32[12] = M > 1 ? M / (M - 1) : 0;
  const desc = `batchNorm${relu ? '+relu' : ''} ${x.describe()}${training ? '' : ' eval'}`;

  // Per-channel parameters the kernels need even without affine/running statistics.
  const temps: Tensor[] = [];
  const temp = (t: Tensor): Tensor => { temps.push(t); return t; };
  const g = gamma ?? temp(Tensor.full([C], 1));
  const b = beta ?? temp(Tensor.zeros([C]));

  const stats = Tensor.empty([4, C]);
  if (training) {
    const rm = opts.runningMean ?? temp(Tensor.empty([C]));
    const rv = opts.runningVar ?? temp(Tensor.empty([C]));
    const nbt = opts.numBatchesTracked ?? temp(Tensor.empty([1], 'i32'));
    launch({ kernel: kernel('stats'), label: `${desc} stats`, inputs: [x, g, b], outputs: [stats, rm, rv, nbt], uniforms: u, workgroups: grid1d(C, 1) });
  } else {
    launch({ kernel: kernel('evalStats'), label: `${desc} evalStats`, inputs: [opts.runningMean!, opts.runningVar!, g, b], outputs: [stats], uniforms: u, workgroups: [Math.ceil(C / 64), 1, 1] });
  }
  for (const t of temps) t.dispose();

  const y = Tensor.empty(x.shape);
  // Four elements per invocation (vec4) when each run of HW elements splits into whole vec4s.
  const vec4 = HW % 4 === 0;
  const perInvocation = vec4 ? 4 : 1;
  const elementwise = (name: string): KernelSpec => kernel(vec4 ? `${name}4` : name);
  launch({ kernel: elementwise('normalize'), label: `${desc} normalize`, inputs: [x, stats], outputs: [y], uniforms: u, workgroups: grid1d(x.size / perInvocation, 256) });

  const inputs = gamma && beta ? [x, gamma, beta] : [x];
  record(y, relu ? 'batchNormRelu' : 'batchNorm', inputs, (dy) => {
    const dgamma = Tensor.empty([C]);
    const dbeta = Tensor.empty([C]);
    launch({ kernel: kernel('backwardReduce'), label: `${desc} backwardReduce`, inputs: [dy, x, stats], outputs: [dgamma, dbeta], uniforms: u, workgroups: grid1d(C, 1) });
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      launch({ kernel: elementwise('backwardInput'), label: `${desc} backwardInput`, inputs: [dy, x, stats, dgamma, dbeta], outputs: [dx], uniforms: u, workgroups: grid1d(x.size / perInvocation, 256) });
    }
    if (gamma && beta) return [dx, dgamma, dbeta];
    dgamma.dispose();
    dbeta.dispose();
    return [dx];
  });
  if (!y.node) stats.dispose(); // nothing will need the statistics again
  return y;
}
