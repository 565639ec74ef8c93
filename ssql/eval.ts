// Evaluation of a pretrained backbone after post-training quantization (SSQL-SPEC §6),
// platform independent.
//
// For each bit setting ('fp', '8w8a', '4w4a', '2w4a', ...):
//   1. The backbone is frozen (no gradients), BN runs in eval mode (running statistics), the
//      projector is dropped (`ResNet.features`: the pooled backbone output).
//   2. PTQ calibration, once per setting: the activation ranges are the min/max over ONE
//      augmented training batch (`Augmenter.views`, default 256 images) run in 'calibrate'
//      mode; the weight ranges are per output channel from the frozen weights (the quantizers
//      compute them themselves). Then 'quantize' mode with wbit/abit of the setting; the stem
//      stays 8w8a and the projector 8-bit by role (SPEC §3). 'fp' skips all of this.
//   3. A linear classifier (FP) on the quantized backbone's features, top-1 on the test set.
//      Test features never use augmentation (/255 and normalize only).
//
// Two protocols:
//   'faithful'  the reference recipe: the training images are augmented anew every epoch
//               (`Augmenter.views`) and sent through the frozen quantized backbone; SGD
//               momentum 0.9, no weight decay, lr 30, 100 epochs, x0.1 at 60% and 80% of the
//               epochs (60 and 80). Raw features, as the reference.
//   'fast'      features of the train and test sets computed once without augmentation and
//               cached on the CPU ([N, D] Float32Array), then the same classifier recipe on
//               them. One deviation, for stability: the features are standardized per
//               dimension with the train set's mean and std (the test set with the same
//               constants). Without augmentation noise, lr 30 on raw features is at the mercy
//               of each backbone's feature scale (which differs between SimSiam and SSQL and
//               between bit-widths); standardizing is an affine map, so a linear classifier
//               can represent exactly the same decision functions.
// kNN top-1 (optional, both protocols) uses the un-augmented features: cosine similarity,
// k = 200, votes weighted by exp(sim / 0.1) (the InstDisc / SimSiam kNN monitor).
import type { LabeledImages } from './data/cifar.ts';
import { Tensor, crossEntropy, accuracy, engine, keep, matmul, noGrad, scope } from '../engine/index.ts';
import { Linear } from '../engine/index.ts';
import { SGD, stepLR } from '../engine/index.ts';
import { Augmenter, Xoshiro128 } from './data/augment.ts';
import type { ImageBatch } from './data/augment.ts';
import type { ResNet } from './models/resnet.ts';
import { normalization } from './train.ts';

// ---- bit settings ----------------------------------------------------------------------------

export interface BitSetting {
  /** Canonical name: 'fp' or `${wbit}w${abit}a`. */
  name: string;
  /** False for 'fp' (quantization off; wbit = abit = 0). */
  quantized: boolean;
  wbit: number;
  abit: number;
}

export const DEFAULT_SETTINGS: readonly string[] = ['fp', '8w8a', '6w6a', '5w5a', '4w4a', '3w3a', '2w4a', '2w2a'];

const MIN_BITS = 2;
const MAX_BITS = 16;

/** Parse 'fp' or '<w>w<a>a' (e.g. '4w4a', '2w4a'; case and surrounding spaces ignored). */
export function parseSetting(name: string): BitSetting {
  const s = String(name).trim().toLowerCase();
  if (s === 'fp' || s === 'fp32') return { name: 'fp', quantized: false, wbit: 0, abit: 0 };
  const m = /^(\d+)w(\d+)a$/.exec(s);
  if (!m) {
    throw new RangeError(`bit setting '${name}' is not understood: use 'fp' (full precision) or '<w>w<a>a' with weight and activation bits, e.g. '8w8a', '4w4a', '2w4a'`);
  }
  const wbit = Number(m[1]);
  const abit = Number(m[2]);
  for (const [what, b] of [['weight', wbit], ['activation', abit]] as const) {
    if (b < MIN_BITS || b > MAX_BITS) {
      throw new RangeError(`bit setting '${name}': ${what} bit-width ${b} is out of range (${MIN_BITS}..${MAX_BITS})`);
    }
  }
  return { name: `${wbit}w${abit}a`, quantized: true, wbit, abit };
}

/** Parse a list of settings (an array, or one comma-separated string); duplicates are errors. */
export function parseSettings(names: string | readonly string[]): BitSetting[] {
  const list = typeof names === 'string' ? names.split(',').filter((s) => s.trim() !== '') : [...names];
  if (list.length === 0) throw new RangeError(`no bit settings given (e.g. ${DEFAULT_SETTINGS.join(',')})`);
  const out = list.map(parseSetting);
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.name)) throw new RangeError(`bit setting '${s.name}' is listed twice`);
    seen.add(s.name);
  }
  return out;
}

// ---- data ------------------------------------------------------------------------------------

/** Images and labels, as the dataset readers return them. */
export type ImageSet = LabeledImages;

/** Features cached on the CPU: `data` is row-major [count, dim]. */
export interface Features {
  data: Float32Array;
  count: number;
  dim: number;
}

function checkSet(what: string, s: ImageSet): void {
  const bytes = s.channels * s.height * s.width;
  if (!Number.isInteger(s.count) || s.count <= 0) throw new RangeError(`${what}: no images (count ${s.count})`);
  if (s.images.length < s.count * bytes) throw new RangeError(`${what}: ${s.count} images of ${s.channels}x${s.height}x${s.width} need ${s.count * bytes} bytes, got ${s.images.length}`);
  if (s.labels.length < s.count) throw new RangeError(`${what}: ${s.count} images but ${s.labels.length} labels`);
}

function checkFeatures(what: string, f: Features, labels: ArrayLike<number>): void {
  if (f.data.length !== f.count * f.dim) throw new RangeError(`${what}: ${f.data.length} values for ${f.count} x ${f.dim} features`);
  if (f.count <= 0 || f.dim <= 0) throw new RangeError(`${what}: empty features (${f.count} x ${f.dim})`);
  if (labels.length < f.count) throw new RangeError(`${what}: ${f.count} feature rows but ${labels.length} labels`);
  for (let i = 0; i < f.count; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0) throw new RangeError(`${what}: label ${l} at ${i} is not a class index (integer >= 0)`);
  }
}

function makeAugmenter(set: ImageSet, seed: number): Augmenter {
  if (set.channels !== 1 && set.channels !== 3) throw new RangeError(`evaluation: images must have 1 or 3 channels, got ${set.channels}`);
  const { mean, std } = normalization(set.channels);
  return new Augmenter({ channels: set.channels, height: set.height, width: set.width, mean, std, seed });
}

/** Copy images `idx[from..to)` (or `from..to` in order) into `staging`. */
function gatherImages(set: ImageSet, from: number, to: number, staging: Uint8Array, idx?: ArrayLike<number>): Uint8Array {
  const bytes = set.channels * set.height * set.width;
  if (!idx) return set.images.subarray(from * bytes, to * bytes);
  for (let i = from; i < to; i++) {
    const src = idx[i] * bytes;
    staging.set(set.images.subarray(src, src + bytes), (i - from) * bytes);
  }
  return staging.subarray(0, (to - from) * bytes);
}

function shuffled(n: number, rng: Xoshiro128): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

// ---- quantized feature extraction ----------------------------------------------------------

export interface QuantizeOptions {
  /** Images for the calibration batch (default: the set being evaluated; `evaluate` uses the
   * training set). */
  calibration?: ImageSet;
  /** Calibration batch size (default 256, or the whole calibration set if smaller). */
  calibBatch?: number;
  /** Seeds the choice of calibration images and their augmentation (default 0). */
  seed?: number;
  /** Augmenter for the calibration batch (default: one made from the calibration set's shape
   * with `normalization()` and `seed`). */
  augmenter?: Augmenter;
}

/**
 * Put `encoder` into evaluation at `setting` for the duration of `fn`: BN in eval mode, and
 * for a quantized setting one calibration batch and then 'quantize' mode. Afterwards (also on
 * errors) the quantization mode is 'off', the bit-widths and the train/eval mode are restored.
 */
export async function withSetting<T>(encoder: ResNet, setting: string | BitSetting, opts: QuantizeOptions, fn: () => Promise<T>, fallbackCalibration?: ImageSet): Promise<T> {
  const s = typeof setting === 'string' ? parseSetting(setting) : setting;
  const ctx = encoder.ctx;
  const wasTraining = encoder.training;
  const { wbit, abit } = ctx;
  encoder.eval();
  try {
    ctx.mode = 'off';
    if (s.quantized) {
      const calib = opts.calibration ?? fallbackCalibration;
      if (!calib) throw new RangeError(`setting ${s.name}: no calibration images`);
      calibrate(encoder, calib, opts);
      ctx.wbit = s.wbit;
      ctx.abit = s.abit;
      ctx.mode = 'quantize';
    }
    return await fn();
  } finally {
    ctx.mode = 'off';
    ctx.wbit = wbit;
    ctx.abit = abit;
    encoder.train(wasTraining);
  }
}

/** Reset all ranges and record them over one augmented batch of `calib` (BN as it is set). */
function calibrate(encoder: ResNet, calib: ImageSet, opts: QuantizeOptions): void {
  checkSet('calibration images', calib);
  const n = Math.min(opts.calibBatch ?? 256, calib.count);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`calibration batch must be a positive integer, got ${opts.calibBatch}`);
  const seed = opts.seed ?? 0;
  const rng = new Xoshiro128(seed ^ 0x5eed);
  const order = shuffled(calib.count, rng);
  const staging = new Uint8Array(n * calib.channels * calib.height * calib.width);
  const aug = opts.augmenter ?? makeAugmenter(calib, seed);
  const ctx = encoder.ctx;
  ctx.newStep();
  ctx.mode = 'calibrate';
  scope(() => noGrad(() => {
    const batch = aug.uploadBatch(gatherImages(calib, 0, n, staging, order), n);
    encoder.features(aug.views(batch));
    batch.dispose();
  }));
}

export interface FeatureOptions extends QuantizeOptions {
  /** Images per forward pass (default 256). */
  batchSize?: number;
}

/** Features of every image of `set` without augmentation, in the encoder's current state
 * (call inside `withSetting`). Frozen: no gradients. One readback per batch. */
export async function computeFeatures(encoder: ResNet, set: ImageSet, opts: { batchSize?: number; augmenter?: Augmenter } = {}): Promise<Features> {
  checkSet('images', set);
  const bs = opts.batchSize ?? 256;
  if (!Number.isInteger(bs) || bs < 1) throw new RangeError(`feature batch size must be a positive integer, got ${bs}`);
  const aug = opts.augmenter && opts.augmenter.channels === set.channels && opts.augmenter.height === set.height && opts.augmenter.width === set.width
    ? opts.augmenter : makeAugmenter(set, 0);
  const dim = encoder.featureDim;
  const data = new Float32Array(set.count * dim);
  for (let from = 0; from < set.count; from += bs) {
    const to = Math.min(from + bs, set.count);
    const f = scope(() => noGrad(() => {
      const batch = aug.uploadBatch(gatherImages(set, from, to, new Uint8Array(0)), to - from);
      const out = encoder.features(aug.normalizeOnly(batch));
      batch.dispose();
      return out;
    }));
    try {
      data.set(await f.toArray(), from * dim);
    } finally {
      f.dispose();
    }
  }
  return { data, count: set.count, dim };
}

/** Pooled backbone features of `set` at `setting` (frozen, BN eval, projector dropped), with
 * PTQ calibration on one augmented batch of `opts.calibration` (default `set` itself). */
export async function extractFeatures(encoder: ResNet, set: ImageSet, setting: string | BitSetting, opts: FeatureOptions = {}): Promise<Features> {
  return withSetting(encoder, setting, opts, () => computeFeatures(encoder, set, opts), set);
}

// ---- linear classifier ---------------------------------------------------------------------

export interface LinearOptions {
  /** Default 100 (the reference recipe). */
  epochs?: number;
  /** Initial learning rate (default 30, the reference recipe); x0.1 at 60% and 80% of the epochs. */
  lr?: number;
  momentum?: number;
  batchSize?: number;
  seed?: number;
  /** Standardize features per dimension with the train set's mean/std (default true). */
  standardize?: boolean;
  /** Number of classes (default: largest label + 1 over train and test). */
  numClasses?: number;
  onEpoch?: (epoch: number, epochs: number) => void;
}

/** The epochs at which the learning rate drops x0.1: 60% and 80% of the run (60, 80 of 100). */
export function linearMilestones(epochs: number): number[] {
  return [Math.round(0.6 * epochs), Math.round(0.8 * epochs)];
}

function numClasses(...labels: ArrayLike<number>[]): number {
  let k = 0;
  for (const l of labels) for (let i = 0; i < l.length; i++) k = Math.max(k, l[i] + 1);
  return k;
}

/** Per-dimension mean and std (population; std floored at 1e-6) of row-major features. */
export function featureStats(f: Features): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(f.dim);
  const sq = new Float64Array(f.dim);
  for (let i = 0; i < f.count; i++) {
    const o = i * f.dim;
    for (let d = 0; d < f.dim; d++) mean[d] += f.data[o + d];
  }
  for (let d = 0; d < f.dim; d++) mean[d] /= f.count;
  for (let i = 0; i < f.count; i++) {
    const o = i * f.dim;
    for (let d = 0; d < f.dim; d++) {
      const c = f.data[o + d] - mean[d];
      sq[d] += c * c;
    }
  }
  const std = sq.map((v) => Math.max(Math.sqrt(v / f.count), 1e-6));
  return { mean, std };
}

function standardized(f: Features, stats: { mean: Float64Array; std: Float64Array }): Features {
  const data = new Float32Array(f.data.length);
  for (let i = 0; i < f.count; i++) {
    const o = i * f.dim;
    for (let d = 0; d < f.dim; d++) data[o + d] = (f.data[o + d] - stats.mean[d]) / stats.std[d];
  }
  return { data, count: f.count, dim: f.dim };
}

function checkLinearOptions(o: LinearOptions): { epochs: number; lr: number; momentum: number; batchSize: number; seed: number } {
  const epochs = o.epochs ?? 100;
  const lr = o.lr ?? 30;
  const batchSize = o.batchSize ?? 256;
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`linear classifier: epochs must be a positive integer, got ${epochs}`);
  if (!(lr > 0 && Number.isFinite(lr))) throw new RangeError(`linear classifier: lr must be a positive number, got ${lr}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`linear classifier: batch size must be a positive integer, got ${batchSize}`);
  return { epochs, lr, momentum: o.momentum ?? 0.9, batchSize, seed: o.seed ?? 0 };
}

/** A linear layer and its optimizer (momentum 0.9, no weight decay). */
function makeClassifier(dim: number, classes: number, o: { lr: number; momentum: number; seed: number }): { fc: Linear; opt: SGD } {
  const init = new Xoshiro128(o.seed ^ 0x11ea);
  const fc = new Linear(dim, classes, { random: () => init.next() });
  const opt = new SGD(fc.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: 0 });
  return { fc, opt };
}

function disposeClassifier(c: { fc: Linear; opt: SGD }): void {
  c.opt.zeroGrad();
  c.opt.dispose();
  for (const p of c.fc.parameters()) p.dispose();
}

/** Top-1 accuracy (%) of `fc` on cached features. */
async function testAccuracy(fc: Linear, f: Features, labels: ArrayLike<number>, batch = 1024): Promise<number> {
  const parts: Tensor[] = [];
  try {
    for (let from = 0; from < f.count; from += batch) {
      const to = Math.min(from + batch, f.count);
      parts.push(scope(() => noGrad(() => {
        const x = Tensor.fromArray(f.data.subarray(from * f.dim, to * f.dim), [to - from, f.dim]);
        const y = Tensor.fromArray(Array.from({ length: to - from }, (_, i) => labels[from + i]), [to - from], { dtype: 'i32' });
        return keep(accuracy(fc.forward(x), y));
      })));
    }
    let hits = 0;
    for (let i = 0; i < parts.length; i++) {
      const n = Math.min(batch, f.count - i * batch);
      hits += Math.round((await parts[i].item()) * n);
    }
    return (100 * hits) / f.count;
  } finally {
    for (const p of parts) p.dispose();
  }
}

/**
 * Train a linear classifier (engine Linear, on the GPU) on cached features with SGD momentum
 * 0.9, no weight decay, cross-entropy, shuffled mini-batches (seeded), lr x0.1 at 60% and 80%
 * of the epochs; returns top-1 accuracy in percent on the test features. By default the
 * features are standardized with the train set's per-dimension mean/std (see the file header).
 */
export async function trainLinear(trainFeatures: Features, trainLabels: ArrayLike<number>, testFeatures: Features, testLabels: ArrayLike<number>, opts: LinearOptions = {}): Promise<number> {
  checkFeatures('train features', trainFeatures, trainLabels);
  checkFeatures('test features', testFeatures, testLabels);
  if (trainFeatures.dim !== testFeatures.dim) throw new RangeError(`train features have ${trainFeatures.dim} dims, test features ${testFeatures.dim}`);
  const o = checkLinearOptions(opts);
  const classes = opts.numClasses ?? numClasses(Array.from(trainLabels).slice(0, trainFeatures.count), Array.from(testLabels).slice(0, testFeatures.count));
  let train = trainFeatures;
  let test = testFeatures;
  if (opts.standardize ?? true) {
    const stats = featureStats(train);
    train = standardized(train, stats);
    test = standardized(test, stats);
  }
  const { count: N, dim: D } = train;
  const order = new Xoshiro128(o.seed);
  const clf = makeClassifier(D, classes, o);
  const milestones = linearMilestones(o.epochs);
  const xs = new Float32Array(Math.min(o.batchSize, N) * D);
  const ys = new Int32Array(Math.min(o.batchSize, N));
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      clf.opt.lr = stepLR(o.lr, epoch, milestones);
      const perm = shuffled(N, order);
      for (let from = 0; from < N; from += o.batchSize) {
        const to = Math.min(from + o.batchSize, N);
        const n = to - from;
        for (let i = 0; i < n; i++) {
          const r = perm[from + i];
          xs.set(train.data.subarray(r * D, (r + 1) * D), i * D);
          ys[i] = trainLabels[r];
        }
        scope(() => {
          const x = Tensor.fromArray(xs.subarray(0, n * D), [n, D]);
          const y = Tensor.fromArray(ys.subarray(0, n), [n], { dtype: 'i32' });
          clf.opt.zeroGrad();
          crossEntropy(clf.fc.forward(x), y).backward();
          clf.opt.step();
        });
      }
      opts.onEpoch?.(epoch + 1, o.epochs);
      if (epoch % 10 === 9) await engine().sync(); // bound the queued work
    }
    return await testAccuracy(clf.fc, test, testLabels);
  } finally {
    disposeClassifier(clf);
  }
}

// ---- kNN -------------------------------------------------------------------------------------

export interface KnnOptions {
  /** Neighbours (default 200; at most the train set size). */
  k?: number;
  /** Vote weight exp(sim / temperature) (default 0.1). */
  temperature?: number;
  numClasses?: number;
  /** Test rows per similarity matmul (default 512) and train rows per chunk (default 8192). */
  testChunk?: number;
  trainChunk?: number;
}

function l2Normalized(f: Features): Float32Array {
  const out = new Float32Array(f.data.length);
  for (let i = 0; i < f.count; i++) {
    const o = i * f.dim;
    let s = 0;
    for (let d = 0; d < f.dim; d++) s += f.data[o + d] * f.data[o + d];
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < f.dim; d++) out[o + d] = f.data[o + d] * inv;
  }
  return out;
}

/**
 * kNN top-1 (%): cosine similarities (L2-normalized features, matmul on the GPU in chunks),
 * the k most similar train samples vote for their labels with weight exp(sim / T) (the
 * InstDisc / SimSiam kNN monitor); ties go to the lower class index.
 */
export async function knnTop1(trainFeatures: Features, trainLabels: ArrayLike<number>, testFeatures: Features, testLabels: ArrayLike<number>, opts: KnnOptions = {}): Promise<number> {
  checkFeatures('train features', trainFeatures, trainLabels);
  checkFeatures('test features', testFeatures, testLabels);
  const D = trainFeatures.dim;
  if (D !== testFeatures.dim) throw new RangeError(`train features have ${D} dims, test features ${testFeatures.dim}`);
  const kReq = opts.k ?? 200;
  const T = opts.temperature ?? 0.1;
  if (!Number.isInteger(kReq) || kReq < 1) throw new RangeError(`kNN: k must be a positive integer, got ${kReq}`);
  if (!(T > 0)) throw new RangeError(`kNN: temperature must be positive, got ${T}`);
  const Ntr = trainFeatures.count;
  const Nte = testFeatures.count;
  const k = Math.min(kReq, Ntr);
  const classes = opts.numClasses ?? numClasses(Array.from(trainLabels).slice(0, Ntr), Array.from(testLabels).slice(0, Nte));
  const testChunk = opts.testChunk ?? 512;
  const trainChunk = opts.trainChunk ?? 8192;
  const train = l2Normalized(trainFeatures);
  const test = l2Normalized(testFeatures);
  // The train set on the GPU, in chunks (kept for the whole run).
  const trainParts: { from: number; t: Tensor }[] = [];
  let hits = 0;
  try {
    for (let from = 0; from < Ntr; from += trainChunk) {
      const to = Math.min(from + trainChunk, Ntr);
      // Transposed ([D, cols]): the matmul's vectorized layout (faster than transB).
      const cols = to - from;
      const tt = new Float32Array(D * cols);
      for (let c = 0; c < cols; c++) for (let d = 0; d < D; d++) tt[d * cols + c] = train[(from + c) * D + d];
      trainParts.push({ from, t: keep(Tensor.fromArray(tt, [D, cols])) });
    }
    // Per test row of a chunk: a min-heap of the k best (similarity, train index).
    const heapSim = new Float32Array(testChunk * k);
    const heapIdx = new Int32Array(testChunk * k);
    const heapLen = new Int32Array(testChunk);
    const votes = new Float64Array(classes);
    for (let t0 = 0; t0 < Nte; t0 += testChunk) {
      const t1 = Math.min(t0 + testChunk, Nte);
      const rows = t1 - t0;
      heapLen.fill(0);
      const q = Tensor.fromArray(test.subarray(t0 * D, t1 * D), [rows, D]);
      try {
        for (const part of trainParts) {
          const cols = part.t.shape[1];
          const simT = noGrad(() => matmul(q, part.t));
          let sim: ArrayLike<number>;
          try {
            sim = await simT.toArray();
          } finally {
            simT.dispose();
          }
          for (let r = 0; r < rows; r++) {
            const base = r * k;
            const srow = r * cols;
            for (let c = 0; c < cols; c++) {
              const v = sim[srow + c];
              if (heapLen[r] < k) heapPush(heapSim, heapIdx, base, heapLen[r]++, v, part.from + c);
              else if (v > heapSim[base]) heapReplaceTop(heapSim, heapIdx, base, k, v, part.from + c);
            }
          }
        }
      } finally {
        q.dispose();
      }
      for (let r = 0; r < rows; r++) {
        votes.fill(0);
        const base = r * k;
        for (let j = 0; j < heapLen[r]; j++) votes[trainLabels[heapIdx[base + j]]] += Math.exp(heapSim[base + j] / T);
        let best = 0;
        for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
        if (best === testLabels[t0 + r]) hits++;
      }
    }
  } finally {
    for (const p of trainParts) p.t.dispose();
  }
  return (100 * hits) / Nte;
}

function heapPush(sim: Float32Array, idx: Int32Array, base: number, len: number, v: number, id: number): void {
  let i = len;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (sim[base + parent] <= v) break;
    sim[base + i] = sim[base + parent];
    idx[base + i] = idx[base + parent];
    i = parent;
  }
  sim[base + i] = v;
  idx[base + i] = id;
}

function heapReplaceTop(sim: Float32Array, idx: Int32Array, base: number, len: number, v: number, id: number): void {
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= len) break;
    const r = l + 1;
    const c = r < len && sim[base + r] < sim[base + l] ? r : l;
    if (sim[base + c] >= v) break;
    sim[base + i] = sim[base + c];
    idx[base + i] = idx[base + c];
    i = c;
  }
  sim[base + i] = v;
  idx[base + i] = id;
}

// ---- the protocol ----------------------------------------------------------------------------

export type EvalProtocol = 'fast' | 'faithful';

export interface EvalProgress {
  setting: string;
  /** Index of the setting and number of settings. */
  index: number;
  total: number;
  stage: 'features' | 'linear' | 'knn' | 'done';
  /** Linear stage: epochs done and total. */
  epoch?: number;
  epochs?: number;
  /** 'done': the setting's linear top-1 (%) and kNN top-1 (% or undefined). */
  top1?: number;
  knn?: number;
}

export interface EvalOptions {
  /** Bit settings (default DEFAULT_SETTINGS). */
  settings?: readonly string[];
  /** Default 'fast'. */
  protocol?: EvalProtocol;
  /** Linear classifier epochs (default 100) and initial lr (default 30). */
  epochs?: number;
  lr?: number;
  /** Linear classifier batch size (default 256). */
  batchSize?: number;
  /** Also report kNN top-1 (default false). */
  knn?: boolean;
  knnK?: number;
  knnTemperature?: number;
  /** Calibration batch size (default 256) and feature batch size (default 256). */
  calibBatch?: number;
  featureBatch?: number;
  seed?: number;
  onProgress?: (p: EvalProgress) => void;
}

export interface EvalResult {
  /** Linear top-1 (%) per setting name, in the order given. */
  results: Record<string, number>;
  /** kNN top-1 (%) per setting, when asked for. */
  knn?: Record<string, number>;
}

/** Linear evaluation (and optionally kNN) of `encoder`'s backbone at each bit setting
 * (SSQL-SPEC §6; protocols in the file header). Calibration uses the training set. */
export async function evaluate(encoder: ResNet, train: ImageSet, test: ImageSet, opts: EvalOptions = {}): Promise<EvalResult> {
  checkSet('training images', train);
  checkSet('test images', test);
  if (train.channels !== test.channels || train.height !== test.height || train.width !== test.width) {
    throw new RangeError(`training images are ${train.channels}x${train.height}x${train.width}, test images ${test.channels}x${test.height}x${test.width}`);
  }
  const protocol = opts.protocol ?? 'fast';
  if (protocol !== 'fast' && protocol !== 'faithful') throw new RangeError(`evaluation protocol must be 'fast' or 'faithful', got '${String(protocol)}'`);
  const settings = parseSettings(opts.settings ?? DEFAULT_SETTINGS);
  const seed = opts.seed ?? 0;
  const lin = { epochs: opts.epochs, lr: opts.lr, batchSize: opts.batchSize, seed };
  checkLinearOptions(lin);
  const classes = numClasses(train.labels.subarray(0, train.count), test.labels.subarray(0, test.count));
  const results: Record<string, number> = {};
  const knn: Record<string, number> | undefined = opts.knn ? {} : undefined;
  const aug = makeAugmenter(train, seed);
  const featOpts = { batchSize: opts.featureBatch, augmenter: aug };
  const quant: QuantizeOptions = { calibration: train, calibBatch: opts.calibBatch, seed, augmenter: aug };
  for (const [index, s] of settings.entries()) {
    const progress = (p: Omit<EvalProgress, 'setting' | 'index' | 'total'>) => opts.onProgress?.({ setting: s.name, index, total: settings.length, ...p });
    const onEpoch = (epoch: number, epochs: number) => progress({ stage: 'linear', epoch, epochs });
    await withSetting(encoder, s, quant, async () => {
      progress({ stage: 'features' });
      const testF = await computeFeatures(encoder, test, featOpts);
      const trainF = protocol === 'fast' || knn ? await computeFeatures(encoder, train, featOpts) : null;
      if (protocol === 'fast') {
        results[s.name] = await trainLinear(trainF!, train.labels, testF, test.labels, { ...lin, numClasses: classes, onEpoch });
      } else {
        results[s.name] = await trainLinearFaithful(encoder, train, testF, test.labels, aug, { ...lin, numClasses: classes, onEpoch });
      }
      if (knn) {
        progress({ stage: 'knn' });
        knn[s.name] = await knnTop1(trainF!, train.labels, testF, test.labels, { k: opts.knnK, temperature: opts.knnTemperature, numClasses: classes });
      }
    });
    progress({ stage: 'done', top1: results[s.name], knn: knn?.[s.name] });
  }
  return knn ? { results, knn } : { results };
}

/** The reference recipe: each epoch every training image is augmented anew and sent through the
 * frozen (quantized) backbone in its current state; raw features (no standardization). */
async function trainLinearFaithful(encoder: ResNet, train: ImageSet, testFeatures: Features, testLabels: ArrayLike<number>, aug: Augmenter, opts: LinearOptions & { numClasses: number }): Promise<number> {
  const o = checkLinearOptions(opts);
  const order = new Xoshiro128(o.seed);
  const clf = makeClassifier(encoder.featureDim, opts.numClasses, o);
  const milestones = linearMilestones(o.epochs);
  const N = train.count;
  const staging = new Uint8Array(Math.min(o.batchSize, N) * train.channels * train.height * train.width);
  const ys = new Int32Array(Math.min(o.batchSize, N));
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      clf.opt.lr = stepLR(o.lr, epoch, milestones);
      const perm = shuffled(N, order);
      for (let from = 0; from < N; from += o.batchSize) {
        const to = Math.min(from + o.batchSize, N);
        const n = to - from;
        for (let i = 0; i < n; i++) ys[i] = train.labels[perm[from + i]];
        scope(() => {
          const batch: ImageBatch = aug.uploadBatch(gatherImages(train, from, to, staging, perm), n);
          const feats = noGrad(() => encoder.features(aug.views(batch)));
          const y = Tensor.fromArray(ys.subarray(0, n), [n], { dtype: 'i32' });
          clf.opt.zeroGrad();
          crossEntropy(clf.fc.forward(feats), y).backward();
          clf.opt.step();
          batch.dispose();
        });
      }
      opts.onEpoch?.(epoch + 1, o.epochs);
      await engine().sync();
    }
    return await testAccuracy(clf.fc, testFeatures, testLabels);
  } finally {
    disposeClassifier(clf);
  }
}
