// Batch normalization (PyTorch's F.batch_norm) over (N, C, ...) tensors, with what follows it in
// a ResNet fused into the same passes: an optional residual added after the affine transform,
// an optional ReLU, and optionally the activation range observer or fake quantization that
// comes next (`act`). Training: batch statistics (biased variance) normalize, and the running
// mean/var (unbiased variance) and num_batches_tracked are updated in place on the GPU. Eval:
// the running statistics normalize. Kernels in shaders/batchnorm.wgsl: forward in training is
// three dispatches (per-channel partial sums over many invocations, a per-channel fold, then one
// element-wise pass that writes the output), backward three (the partial sums of g' and
// g' * xhat together, a fold, then an element-wise pass for dx).
//
// The fused op computes exactly what the chain it replaces computes (batchNorm, add, relu, then
// MinMaxObserver.observe or fakeQuantAct), forward values, gradients, straight-through mask and
// observed range alike; in reference mode (setReferenceKernels) it runs as that chain.
import fakeQuantSource from '../../shaders/fake-quant.wgsl';
import source from '../../shaders/batchnorm.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { shapeString } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { add, relu as reluOp } from './elementwise.ts';
import { referenceKernels } from './kernel-path.ts';
import { MinMaxObserver, checkBits, fakeQuantAct } from './quant.ts';

/** What follows the batch norm (and its ReLU): the activation range observer records the
 * output's min/max, or the output is fake-quantized at `bits` with the observer's range. */
export type BatchNormAct =
  | { kind: 'observe'; observer: MinMaxObserver }
  | { kind: 'quantize'; observer: MinMaxObserver; bits: number };

export interface BatchNormOptions {
  /** Normalize with batch statistics (and update the running ones). Default true. */
  training?: boolean;
  /** Running-average factor, PyTorch's convention: new = (1 - m)*old + m*batch. Default 0.1. */
  momentum?: number;
  /** Default 1e-5. */
  eps?: number;
  /** Fuse a ReLU after the affine transform (and the residual). Default false. */
  relu?: boolean;
  /** [C] f32, updated in place in training mode, read in eval mode. */
  runningMean?: Tensor | null;
  /** [C] f32, unbiased batch variance averaged in, as PyTorch. */
  runningVar?: Tensor | null;
  /** A one-element i32 tensor incremented in place on each training call with running stats. */
  numBatchesTracked?: Tensor | null;
  /** Added after the affine transform, before the ReLU (a ResNet block's shortcut): x's shape,
   * f32; its gradient is the one reaching the sum. */
  residual?: Tensor | null;
  /** The observer or activation quantizer that follows (see BatchNormAct). */
  act?: BatchNormAct | null;
}

const WG = 256;
/** vec4 units per invocation of the element-wise passes (PER in the shader; with VEC4 at most
 * that many, a row's units split evenly). */
const UNITS_PER_INVOCATION = 8;
const WG_PART = 64;
/** Per-channel passes: aim for this many invocations, each over at least MIN_PART_UNITS vec4 units. */
const TARGET_PART_INVOCATIONS = 1024;
const MIN_PART_UNITS = 64;
const TRAINING = 2;
const UPDATE = 4;
const ACT_NONE = 0;
const ACT_OBSERVE = 1;
const ACT_QUANTIZE = 2;

const kernels = declareKernels({
  name: 'batchnorm',
  source: `${source}\n${fakeQuantSource}`,
  params: {
    N: 'u32', C: 'u32', HW: 'u32',
    M: 'u32', // elements per channel: N*HW
    size: 'u32', // N*C*HW
    P: 'u32', L: 'u32', // parts per channel, vec4 units (ROWS: rows n) per part
    chunks: 'u32', K: 'u32', EL: 'u32', // element-wise passes (VEC4, ROWS): invocations, chunks per (n, c) row, units per chunk
    flags: 'u32', // TRAINING | UPDATE
    bits: 'u32', // act quantize
    eps: 'f32', momentum: 'f32', invM: 'f32',
    unbias: 'f32', // M / (M - 1)
  },
  defines: { VEC4: 'bool', ROWS: 'bool', COLS: 'bool', RELU: 'bool', RESIDUAL: 'bool', ACT: 'u32', MASKED: 'bool' },
  entryPoints: {
    statsPartial: { inputs: { X: 'vec4<f32>' }, outputs: { SPart: 'vec2<f32>' } },
    statsFinal: { inputs: { X: 'vec4<f32>', FPart: 'vec2<f32>', Gamma: 'f32', Beta: 'f32' }, outputs: { OutStats: 'f32', RunMean: 'f32', RunVar: 'f32', NumBatches: 'i32' } },
    evalStats: { inputs: { ERunMean: 'f32', ERunVar: 'f32', EGamma: 'f32', EBeta: 'f32' }, outputs: { EStats: 'f32' } },
    // Obs: the observer's state, raised with ACT 1, read with ACT 2, a placeholder with ACT 0.
    normalize: { inputs: { X: 'vec4<f32>', R: 'vec4<f32>', Stats: 'f32' }, outputs: { Y: 'vec4<f32>', Obs: 'atomic<u32>' } },
    // DR: g' with RESIDUAL (the residual's gradient), a placeholder without.
    backwardPartial: { inputs: { X: 'vec4<f32>', R: 'vec4<f32>', Stats: 'f32', QS: 'u32', DY: 'vec4<f32>' }, outputs: { BPart: 'vec2<f32>', DR: 'vec4<f32>' } },
    backwardFinal: { inputs: { GPart: 'vec2<f32>' }, outputs: { DGammaOut: 'f32', DBetaOut: 'f32' } },
    backwardInput: { inputs: { X: 'vec4<f32>', R: 'vec4<f32>', Stats: 'f32', QS: 'u32', DY: 'vec4<f32>', DGamma: 'f32', DBeta: 'f32' }, outputs: { DX: 'vec4<f32>' } },
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
 * y = (x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1) of x [N, C, ...], then
 * + residual, ReLU, and the observer or fake quantization of `act`, as the options ask.
 * `gamma`/`beta` may be null (affine false). Gradients flow to x, gamma, beta and the residual.
 */
export function batchNorm(x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNormOptions = {}): Tensor {
  checkDtype('batchNorm', 'f32', x);
  if (x.ndim < 2) throw new RangeError(`batchNorm: input must be [N, C, ...], got ${x.describe()}`);
  if ((gamma === null) !== (beta === null)) throw new TypeError('batchNorm: give both gamma and beta, or neither (affine false)');
  const training = opts.training ?? true;
  const momentum = opts.momentum ?? 0.1;
  const eps = opts.eps ?? 1e-5;
  const relu = opts.relu ?? false;
  const residual = opts.residual ?? null;
  const act = opts.act ?? null;
  const [N, C] = x.shape;
  const HW = x.shape.slice(2).reduce((n, d) => n * d, 1);
  const M = N * HW;
  checkVector('gamma', gamma, C);
  checkVector('beta', beta, C);
  checkVector('runningMean', opts.runningMean, C);
  checkVector('runningVar', opts.runningVar, C);
  checkVector('numBatchesTracked', opts.numBatchesTracked, C, 'i32', 1);
  if (residual) {
    checkDtype('batchNorm residual', 'f32', residual);
    if (shapeString(residual.shape) !== shapeString(x.shape)) throw new RangeError(`batchNorm: residual ${residual.describe()} does not match input ${x.describe()}`);
  }
  if (act?.kind === 'quantize') checkBits('batchNorm act', act.bits);
  if ((opts.runningMean == null) !== (opts.runningVar == null)) throw new TypeError('batchNorm: give both runningMean and runningVar, or neither');
  if (!training && !opts.runningMean) throw new TypeError('batchNorm: eval mode (training: false) needs runningMean and runningVar');
  if (training && M <= 1) throw new RangeError(`batchNorm: expected more than 1 value per channel when training, got input ${shapeString(x.shape)}`);

  if (referenceKernels() && (residual || act)) return unfusedChain(x, gamma, beta, opts);

  const update = training && !!opts.runningMean;
  const vec4 = HW % 4 === 0;
  // Per-channel passes walk a channel's rows as the aligned vec4 units that cover them where
  // H*W is not a multiple of 4 but at least 4 (7x7 maps): parts are then whole rows n.
  const rows = !vec4 && HW >= 4;
  // [N, C] with C % 4 == 0 (the projector's batch norm): an invocation takes four channels, one
  // a lane, over a part of the rows (a vec4 load a row instead of four strided scalars).
  const cols = HW === 1 && C % 4 === 0;
  const units = Math.ceil(M / 4);
  const span = rows || cols ? N : units;
  const unitsPerSpan = rows ? Math.ceil(HW / 4) : 1;
  const channelGroups = cols ? C / 4 : C;
  let P = Math.max(1, Math.min(Math.ceil(TARGET_PART_INVOCATIONS / channelGroups), Math.floor((span * unitsPerSpan) / MIN_PART_UNITS)));
  const L = Math.ceil(span / P);
  P = Math.ceil(span / L);
  // Element-wise passes with VEC4 or ROWS: the whole units of each (n, c) row in K chunks of at
  // most EL (the last to the row's end).
  const rowChunks = vec4 || rows;
  const rowUnits = Math.floor(HW / 4);
  const K = rowChunks ? Math.ceil(rowUnits / UNITS_PER_INVOCATION) : 1;
  const EL = rowChunks ? Math.ceil(rowUnits / K) : 0;
  const chunks = rowChunks ? N * C * K : 0;
  const actKind = act === null ? ACT_NONE : act.kind === 'observe' ? ACT_OBSERVE : ACT_QUANTIZE;
  const params = {
    N, C, HW, M, size: x.size, P, L, chunks, K, EL,
    flags: (training ? TRAINING : 0) | (update ? UPDATE : 0),
    bits: act?.kind === 'quantize' ? act.bits : 0,
    eps, momentum, invM: 1 / M, unbias: M > 1 ? M / (M - 1) : 0,
  };
  const plain = { VEC4: vec4, ROWS: rows, COLS: cols, RELU: false, RESIDUAL: false, ACT: ACT_NONE, MASKED: false };
  const fused = { VEC4: vec4, ROWS: rows, COLS: cols, RELU: relu, RESIDUAL: residual !== null, ACT: actKind, MASKED: false };
  const r = residual ?? x; // bound but unread without a residual
  const fusedName = `batchNorm${residual ? '+add' : ''}${relu ? '+relu' : ''}${act ? `+${act.kind}` : ''}`;
  const desc = `${fusedName} ${x.describe()}${training ? '' : ' eval'}`;
  const partGrid = grid1d(channelGroups * P, WG_PART);
  const elementGrid = rowChunks ? grid1d(chunks, WG) : grid1d(Math.ceil(x.size / 4), UNITS_PER_INVOCATION * WG);

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
    const parts = temp(Tensor.empty([C * P, 2]));
    launch(kernels.statsPartial, {
      label: `${desc} statsPartial`, params, defines: plain, workgroups: partGrid,
      inputs: { X: x }, outputs: { SPart: parts },
    });
    launch(kernels.statsFinal, {
      label: `${desc} statsFinal`, params, defines: plain, workgroups: grid1d(C, 64),
      inputs: { X: x, FPart: parts, Gamma: g, Beta: b }, outputs: { OutStats: stats, RunMean: rm, RunVar: rv, NumBatches: nbt },
    });
  } else {
    launch(kernels.evalStats, {
      label: `${desc} evalStats`, params, defines: plain, workgroups: grid1d(C, 64),
      inputs: { ERunMean: opts.runningMean!, ERunVar: opts.runningVar!, EGamma: g, EBeta: b }, outputs: { EStats: stats },
    });
  }
  for (const t of temps) t.dispose();

  const y = Tensor.empty(x.shape);
  const obs = act?.observer.state ?? Tensor.empty([2], 'u32');
  launch(kernels.normalize, {
    label: `${desc} normalize`, params, defines: fused, workgroups: elementGrid,
    inputs: { X: x, R: r, Stats: stats }, outputs: { Y: y, Obs: obs },
  });
  if (!act) obs.dispose();

  const inputs = [x, ...(gamma && beta ? [gamma, beta] : []), ...(residual ? [residual] : [])];
  // The gradient sees the quantizer; observing changes nothing in it.
  const gradDefines = { ...fused, ACT: actKind === ACT_QUANTIZE ? ACT_QUANTIZE : ACT_NONE };
  record(y, fusedName, inputs, (dy) => {
    // The observer's state as it is now (as fakeQuantAct's backward reads it).
    const qs = act?.kind === 'quantize' ? act.observer.state : stats;
    const parts = Tensor.empty([C * P, 2]);
    const common = { X: x, R: r, Stats: stats, QS: qs, DY: dy };
    const dr = residual ? Tensor.empty(x.shape) : null;
    const drOrPlaceholder = dr ?? Tensor.empty([4]);
    launch(kernels.backwardPartial, {
      label: `${desc} backwardPartial`, params, defines: gradDefines, workgroups: partGrid,
      inputs: common, outputs: { BPart: parts, DR: drOrPlaceholder },
    });
    if (!dr) drOrPlaceholder.dispose();
    const dgamma = Tensor.empty([C]);
    const dbeta = Tensor.empty([C]);
    launch(kernels.backwardFinal, {
      label: `${desc} backwardFinal`, params, defines: plain, workgroups: grid1d(C, 64),
      inputs: { GPart: parts }, outputs: { DGammaOut: dgamma, DBetaOut: dbeta },
    });
    parts.dispose();
    let dx: Tensor | null = null;
    if (x.requiresGrad) {
      dx = Tensor.empty(x.shape);
      // With a residual, g' is in dr already: read it instead of masking dy again.
      launch(kernels.backwardInput, {
        label: `${desc} backwardInput`, params, workgroups: elementGrid,
        defines: dr ? { ...gradDefines, MASKED: true } : gradDefines,
        inputs: { ...common, DY: dr ?? dy, DGamma: dgamma, DBeta: dbeta }, outputs: { DX: dx },
      });
    }
    const grads: (Tensor | null)[] = [dx];
    if (gamma && beta) grads.push(dgamma, dbeta);
    else { dgamma.dispose(); dbeta.dispose(); }
    if (residual) grads.push(dr);
    return grads;
  });
  if (!y.node) stats.dispose(); // nothing will need the statistics again
  return y;
}

/** The chain of unfused ops that a batchNorm with `residual` or `act` replaces (reference mode). */
function unfusedChain(x: Tensor, gamma: Tensor | null, beta: Tensor | null, opts: BatchNormOptions): Tensor {
  const residual = opts.residual ?? null;
  const relu = opts.relu ?? false;
  const act = opts.act ?? null;
  const steps: Tensor[] = [];
  let y = batchNorm(x, gamma, beta, { ...opts, relu: relu && !residual, residual: null, act: null });
  if (residual) {
    steps.push(y);
    y = add(y, residual);
    if (relu) {
      steps.push(y);
      y = reluOp(y);
    }
  }
  if (act?.kind === 'observe') {
    act.observer.observe(y);
  } else if (act?.kind === 'quantize') {
    steps.push(y);
    y = fakeQuantAct(y, act.bits, act.observer);
  }
  // Intermediates the tape does not hold are freed now; the rest go with the graph's scope.
  if (!y.requiresGrad) for (const t of steps) t.dispose();
  return y;
}
