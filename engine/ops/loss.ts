// Losses and metrics (shaders/loss.wgsl): cosine similarity and the SimSiam loss, softmax
// cross-entropy with integer labels, top-1 accuracy. Forward and backward are fused row kernels
// that recompute the row statistics in backward instead of saving them.
import source from '../../shaders/loss.wgsl';
import { noGrad, record } from '../autograd.ts';
import { grid1d, launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import { expand, mulScalar } from './elementwise.ts';
import { mean, sum } from './reduce.ts';

const MAX_GROUPS = 65535;

function kernel(entryPoint: string) {
  return { name: 'loss', source, entryPoint };
}

function rowGrid(rows: number): [number, number, number] {
  if (rows <= MAX_GROUPS) return [rows, 1, 1];
  const y = Math.ceil(rows / MAX_GROUPS);
  return [Math.ceil(rows / y), y, 1];
}

function params(rows: number, D: number, inner: number, eps: number): ArrayBuffer {
  const u = new ArrayBuffer(16);
  new Uint32Array(u, 0, 3).set([rows, D, inner]);
  new Float32Array(u, 12, 1)[0] = eps;
  return u;
}

function checkF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    t.buffer;
    if (t.dtype !== 'f32') throw new TypeError(`${op}: expected f32 tensors, got ${t.describe()}`);
  }
}

export interface CosineOptions {
  /** Small value that bounds each norm from below (default 1e-8, as PyTorch). */
  eps?: number;
  /** Treat `b` as a constant (stop-gradient) without making a detached copy. */
  stopGradB?: boolean;
}

interface CosineRows {
  rows: number;
  uniforms: ArrayBuffer;
  outShape: number[];
}

function cosineRows(op: string, a: Tensor, b: Tensor, dim: number, eps: number): CosineRows {
  checkF32(op, a, b);
  if (a.shape.join() !== b.shape.join()) throw new RangeError(`${op}: shapes differ: ${a.describe()} vs ${b.describe()}`);
  const d = dim < 0 ? dim + a.ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= a.ndim) throw new RangeError(`${op}: dim ${dim} out of range for ${a.describe()}`);
  const D = a.shape[d];
  const inner = a.shape.slice(d + 1).reduce((n, v) => n * v, 1);
  const rows = a.size / Math.max(D, 1);
  return { rows, uniforms: params(rows, D, inner, eps), outShape: a.shape.filter((_, i) => i !== d) };
}

function cosineForward(a: Tensor, b: Tensor, c: CosineRows): Tensor {
  const out = Tensor.empty(c.outShape);
  launch({ kernel: kernel('cosineForward'), label: `cosineSimilarity ${a.describe()}`, inputs: [a, b], outputs: [out], uniforms: c.uniforms, workgroups: rowGrid(c.rows) });
  return out;
}

/** Gradients of the per-row cosines given their gradients `g` (one per row). */
function cosineBackward(a: Tensor, b: Tensor, g: Tensor, c: CosineRows, withB: boolean): [Tensor, Tensor | null] {
  const ga = Tensor.empty(a.shape);
  if (!withB) {
    launch({ kernel: kernel('cosineBackwardA'), label: `cosineSimilarity backward ${a.describe()}`, inputs: [a, b, g], outputs: [ga], uniforms: c.uniforms, workgroups: rowGrid(c.rows) });
    return [ga, null];
  }
  const gb = Tensor.empty(b.shape);
  launch({ kernel: kernel('cosineBackwardAB'), label: `cosineSimilarity backward ${a.describe()}`, inputs: [a, b, g], outputs: [ga, gb], uniforms: c.uniforms, workgroups: rowGrid(c.rows) });
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
    const gRows = expand(g, c.outShape, -1 / c.rows);
    const [gp] = cosineBackward(p, z, gRows, c, false);
    gRows.dispose();
    return [gp];
  });
}

function checkLabels(op: string, logits: Tensor, labels: Tensor): void {
  checkF32(op, logits);
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
  const u = params(N, K, 1, 0);
  launch({ kernel: kernel('ceForward'), label: `crossEntropy ${logits.describe()}`, inputs: [logits, labels], outputs: [perRow], uniforms: u, workgroups: grid1d(N, 64) });
  const backward = (gRows: Tensor): Tensor => {
    const gx = Tensor.empty(logits.shape);
    launch({ kernel: kernel('ceBackward'), label: `crossEntropy backward ${logits.describe()}`, inputs: [logits, labels, gRows], outputs: [gx], uniforms: u, workgroups: grid1d(N, 64) });
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
  launch({ kernel: kernel('top1'), label: `accuracy ${logits.describe()}`, inputs: [logits, labels], outputs: [hits], uniforms: params(N, K, 1, 0), workgroups: grid1d(N, 64) });
  const out = mean(hits);
  hits.dispose();
  return out;
}
