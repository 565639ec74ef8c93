// Batch normalization (PyTorch's F.batch_norm) over (N, C, ...) tensors, with an optional fused
// ReLU. Training: batch statistics (biased variance) normalize, and the running mean/var
// (unbiased variance) and num_batches_tracked are updated in place on the GPU. Eval: the running
// statistics normalize. Kernels in shaders/batchnorm.wgsl: two passes forward (per-channel
// statistics, then an element-wise normalize + affine [+ ReLU]), two backward (per-channel
// sum(dy) and sum(dy*xhat), then an element-wise pass).
import source from '../../shaders/batchnorm.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { shapeString } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';

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

const kernels = declareKernels({
  name: 'batchnorm',
  source,
  params: {
    N: 'u32', C: 'u32', HW: 'u32',
    M: 'u32', // elements per channel: N*HW
    CHW: 'u32',
    stepN: 'u32', stepS: 'u32', // WG / HW and WG % HW: how (n, s) advance when the flat index grows by WG
    size: 'u32', // N*C*HW
    flags: 'u32', // RELU | TRAINING | UPDATE
    eps: 'f32', momentum: 'f32', invM: 'f32',
    unbias: 'f32', // M / (M - 1)
  },
  entryPoints: {
    stats: { inputs: { X: 'f32', Gamma: 'f32', Beta: 'f32' }, outputs: { Stats: 'f32', RunMean: 'f32', RunVar: 'f32', NumBatches: 'i32' } },
    evalStats: { inputs: { ERunMean: 'f32', ERunVar: 'f32', EGamma: 'f32', EBeta: 'f32' }, outputs: { EStats: 'f32' } },
    normalize: { inputs: { NX: 'f32', NStats: 'f32' }, outputs: { NY: 'f32' } },
    backwardReduce: { inputs: { RDY: 'f32', RX: 'f32', RStats: 'f32' }, outputs: { RDGamma: 'f32', RDBeta: 'f32' } },
    backwardInput: { inputs: { GDY: 'f32', GX: 'f32', GStats: 'f32', GDGamma: 'f32', GDBeta: 'f32' }, outputs: { GDX: 'f32' } },
    normalize4: { inputs: { VX: 'vec4<f32>', VStats: 'f32' }, outputs: { VY: 'vec4<f32>' } },
    backwardInput4: { inputs: { WDY: 'vec4<f32>', WX: 'vec4<f32>', WStats: 'f32', WDGamma: 'f32', WDBeta: 'f32' }, outputs: { WDX: 'vec4<f32>' } },
  },
});

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
  checkDtype('batchNorm', 'f32', x);
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
  const params = {
    N, C, HW, M, CHW: C * HW, stepN: Math.floor(WG / HW), stepS: WG % HW, size: x.size, flags,
    eps, momentum, invM: 1 / M, unbias: M > 1 ? M / (M - 1) : 0,
  };
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
    launch(kernels.stats, {
      label: `${desc} stats`, params, workgroups: grid1d(C, 1),
      inputs: { X: x, Gamma: g, Beta: b }, outputs: { Stats: stats, RunMean: rm, RunVar: rv, NumBatches: nbt },
    });
  } else {
    launch(kernels.evalStats, {
      label: `${desc} evalStats`, params, workgroups: [Math.ceil(C / 64), 1, 1],
      inputs: { ERunMean: opts.runningMean!, ERunVar: opts.runningVar!, EGamma: g, EBeta: b }, outputs: { EStats: stats },
    });
  }
  for (const t of temps) t.dispose();

  const y = Tensor.empty(x.shape);
  // Four elements per invocation (vec4) when each run of HW elements splits into whole vec4s.
  const vec4 = HW % 4 === 0;
  const elementGrid = grid1d(x.size / (vec4 ? 4 : 1), 256);
  if (vec4) {
    launch(kernels.normalize4, { label: `${desc} normalize`, params, workgroups: elementGrid, inputs: { VX: x, VStats: stats }, outputs: { VY: y } });
  } else {
    launch(kernels.normalize, { label: `${desc} normalize`, params, workgroups: elementGrid, inputs: { NX: x, NStats: stats }, outputs: { NY: y } });
  }

  const inputs = gamma && beta ? [x, gamma, beta] : [x];
  record(y, relu ? 'batchNormRelu' : 'batchNorm', inputs, (dy) => {
    const dgamma = Tensor.empty([C]);
    const dbeta = Tensor.empty([C]);
    launch(kernels.backwardReduce, {
      label: `${desc} backwardReduce`, params, workgroups: grid1d(C, 1),
      inputs: { RDY: dy, RX: x, RStats: stats }, outputs: { RDGamma: dgamma, RDBeta: dbeta },
    });
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      const label = `${desc} backwardInput`;
      if (vec4) {
        launch(kernels.backwardInput4, {
          label, params, workgroups: elementGrid,
          inputs: { WDY: dy, WX: x, WStats: stats, WDGamma: dgamma, WDBeta: dbeta }, outputs: { WDX: dx },
        });
      } else {
        launch(kernels.backwardInput, {
          label, params, workgroups: elementGrid,
          inputs: { GDY: dy, GX: x, GStats: stats, GDGamma: dgamma, GDBeta: dbeta }, outputs: { GDX: dx },
        });
      }
    }
    if (gamma && beta) return [dx, dgamma, dbeta];
    dgamma.dispose();
    dbeta.dispose();
    return [dx];
  });
  if (!y.node) stats.dispose(); // nothing will need the statistics again
  return y;
}
