// Losses and metrics (shaders/loss.wgsl): cosine similarity and the SimSiam loss, softmax
// cross-entropy with integer labels, top-1 accuracy. Forward and backward are fused row kernels
// that recompute the row statistics in backward instead of saving them.
import source from '../../shaders/loss.wgsl';
import { noGrad, record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { expand, mulScalar } from './elementwise.ts';
import { mean, sum } from './reduce.ts';

const kernels = declareKernels({
  name: 'loss',
  source,
  params: { rows: 'u32', D: 'u32', inner: 'u32', eps: 'f32' },
  entryPoints: {
    cosineForward: { inputs: { cA: 'f32', cB: 'f32' }, outputs: { cCos: 'f32' } },
    cosineBackwardA: { inputs: { cA: 'f32', cB: 'f32', cG: 'f32' }, outputs: { cGA: 'f32' } },
    cosineBackwardAB: { inputs: { cA: 'f32', cB: 'f32', cG: 'f32' }, outputs: { cGA: 'f32', cGB: 'f32' } },
    ceForward: { inputs: { eX: 'f32', eLabels: 'i32' }, outputs: { eLoss: 'f32' } },
    ceBackward: { inputs: { eX: 'f32', eLabels: 'i32', eG: 'f32' }, outputs: { eGX: 'f32' } },
    top1: { inputs: { eX: 'f32', eLabels: 'i32' }, outputs: { eHit: 'f32' } },
  },
});

interface RowParams {
  rows: number;
  D: number;
  inner: number;
  eps: number;
}

export interface CosineOptions {
  /** Small value that bounds each norm from below (default 1e-8, as PyTorch). */
  eps?: number;
  /** Treat `b` as a constant (stop-gradient) without making a detached copy. */
  stopGradB?: boolean;
}

interface CosineRows {
  params: RowParams;
  outShape: number[];
}

function cosineRows(op: string, a: Tensor, b: Tensor, dim: number, eps: number): CosineRows {
  checkDtype(op, 'f32', a, b);
  if (a.shape.join() !== b.shape.join()) throw new RangeError(`${op}: shapes differ: ${a.describe()} vs ${b.describe()}`);
  const d = dim < 0 ? dim + a.ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= a.ndim) throw new RangeError(`${op}: dim ${dim} out of range for ${a.describe()}`);
  const D = a.shape[d];
  const inner = a.shape.slice(d + 1).reduce((n, v) => n * v, 1);
  const rows = a.size / Math.max(D, 1);
  return { params: { rows, D, inner, eps }, outShape: a.shape.filter((_, i) => i !== d) };
}

function cosineForward(a: Tensor, b: Tensor, c: CosineRows): Tensor {
  const out = Tensor.empty(c.outShape);
  launch(kernels.cosineForward, {
    label: `cosineSimilarity ${a.describe()}`, params: c.params, workgroups: grid1d(c.params.rows, 1),
    inputs: { cA: a, cB: b }, outputs: { cCos: out },
  });
  return out;
}

/** Gradients of the per-row cosines given their gradients `g` (one per row). */
function cosineBackward(a: Tensor, b: Tensor, g: Tensor, c: CosineRows, withB: boolean): [Tensor, Tensor | null] {
  const ga = Tensor.empty(a.shape);
  if (!withB) {
    launch(kernels.cosineBackwardA, {
      label: `cosineSimilarity backward ${a.describe()}`, params: c.params, workgroups: grid1d(c.params.rows, 1),
      inputs: { cA: a, cB: b, cG: g }, outputs: { cGA: ga },
    });
    return [ga, null];
  }
  const gb = Tensor.empty(b.shape);
  launch(kernels.cosineBackwardAB, {
    label: `cosineSimilarity backward ${a.describe()}`, params: c.params, workgroups: grid1d(c.params.rows, 1),
    inputs: { cA: a, cB: b, cG: g }, outputs: { cGA: ga, cGB: gb },
  });
  return [ga, gb];
}

/** Cosine similarity of `a` and `b` (same shape) along `dim`; the result drops that dim. */
export function cosineSimilarity(a: Tensor, b: Tensor, dim = -1, opts: CosineOptions = {}): Tensor {
  const c = cosineRows('cosineSimilarity', a, b, dim, opts.eps ?? 1e-8);
  const out = cosineForward(a, b, c);
  const stop = opts.stopGradB ?? false;
  return record(out, 'cosineSimilarity', stop ? [a] : [a, b], (g) => {
    const [ga, gb] = cosineBackward(a, b, g, c, !stop && b.requiresGrad);
    return stop ? [ga] : [ga, gb];
  });
}

/** SimSiam's D(p, z) = -mean over the batch of cos(p, stopgrad(z)), features on dim 1.
 * One tape node: the per-row cosines and their mean are not kept. */
export function simsiamLoss(p: Tensor, z: Tensor): Tensor {
  const c = cosineRows('simsiamLoss', p, z, 1, 1e-8);
  const loss = noGrad(() => {
    const cos = cosineForward(p, z, c);
    const m = mean(cos);
    const l = mulScalar(m, -1);
    cos.dispose();
    m.dispose();
    return l;
  });
  return record(loss, 'simsiamLoss', [p], (g) => {
    const gRows = expand(g, c.outShape, -1 / c.params.rows);
    const [gp] = cosineBackward(p, z, gRows, c, false);
    gRows.dispose();
    return [gp];
  });
}

function checkLabels(op: string, logits: Tensor, labels: Tensor): void {
  checkDtype(op, 'f32', logits);
  labels.buffer;
  if (logits.ndim !== 2) throw new RangeError(`${op}: expected logits [N, K], got ${logits.describe()}`);
  if (labels.dtype !== 'i32') throw new TypeError(`${op}: expected i32 labels, got ${labels.describe()}`);
  if (labels.ndim !== 1 || labels.shape[0] !== logits.shape[0]) throw new RangeError(`${op}: labels ${labels.describe()} do not match logits ${logits.describe()}`);
}

export interface CrossEntropyOptions {
  /** 'mean' (default) over the batch, 'sum', or 'none' (per-sample losses [N]). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Softmax cross-entropy of logits [N, K] with i32 class labels [N] (numerically stable).
 * Labels outside [0, K) contribute zero loss and gradient (the mean still divides by N). */
export function crossEntropy(logits: Tensor, labels: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  checkLabels('crossEntropy', logits, labels);
  const [N, K] = logits.shape;
  const perRow = Tensor.empty([N]);
  const params = { rows: N, D: K, inner: 1, eps: 0 };
  launch(kernels.ceForward, {
    label: `crossEntropy ${logits.describe()}`, params, workgroups: grid1d(N, 64),
    inputs: { eX: logits, eLabels: labels }, outputs: { eLoss: perRow },
  });
  const backward = (gRows: Tensor): Tensor => {
    const gx = Tensor.empty(logits.shape);
    launch(kernels.ceBackward, {
      label: `crossEntropy backward ${logits.describe()}`, params, workgroups: grid1d(N, 64),
      inputs: { eX: logits, eLabels: labels, eG: gRows }, outputs: { eGX: gx },
    });
    return gx;
  };
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return record(perRow, 'crossEntropy', [logits], (g) => [backward(g)]);
  // One tape node for the reduced loss: the per-sample losses are not kept.
  const scale = reduction === 'mean' ? 1 / N : 1;
  const out = noGrad(() => (reduction === 'mean' ? mean(perRow) : sum(perRow)));
  perRow.dispose();
  return record(out, 'crossEntropy', [logits], (g) => {
    const gRows = expand(g, [N], scale);
    const gx = backward(gRows);
    gRows.dispose();
    return [gx];
  });
}

/** Fraction of rows whose first arg-max equals the label: a scalar tensor, no gradient. */
export function accuracy(logits: Tensor, labels: Tensor): Tensor {
  checkLabels('accuracy', logits, labels);
  const [N, K] = logits.shape;
  const hits = Tensor.empty([N]);
  launch(kernels.top1, {
    label: `accuracy ${logits.describe()}`, params: { rows: N, D: K, inner: 1, eps: 0 }, workgroups: grid1d(N, 64),
    inputs: { eX: logits, eLabels: labels }, outputs: { eHit: hits },
  });
  const out = mean(hits);
  hits.dispose();
  return out;
}
