// The linear classifier of the evaluation (an FP engine Linear on the GPU): SGD momentum 0.9, no
// weight decay, cross-entropy, seeded shuffled mini-batches, and a learning-rate schedule per
// epoch. One training loop serves both protocols; they differ in how a mini-batch's features
// are produced and in their recipe:
//   'fast'      rows of features cached on the CPU (`trainLinear`), by default standardized per
//               dimension with the train set's mean and std (see ./evaluate.ts for why);
//               FAST_RECIPE, tuned on real checkpoints until more epochs or another learning
//               rate stopped helping (README, "Evaluation");
//   'faithful'  the training images of the batch augmented anew and sent through the frozen
//               (quantized) backbone (`trainLinearFaithful`); raw features and the reference
//               recipe (FAITHFUL_RECIPE: lr 30, 100 epochs, x0.1 at 60% and 80%).
// The trained classifier is read back once; test accuracy is computed from it on the CPU.
import { Linear, Rng, SGD, Tensor, cosineLR, crossEntropy, engine, noGrad, scope, stepLR } from '../../engine/index.ts';
import type { Augmenter } from '../data/augment.ts';
import type { ResNet } from '../models/resnet.ts';
import { checkFeatures } from './features.ts';
import type { Features } from './features.ts';
import { gatherImages, numClasses } from './images.ts';
import type { ImageSet } from './images.ts';

/** The learning rate per epoch: 'step' x0.1 at 60% and 80% of the epochs (the reference's),
 * 'cosine' half a cosine from lr to 0. */
export type LinearSchedule = 'step' | 'cosine';

export interface LinearRecipe {
  epochs: number;
  lr: number;
  schedule: LinearSchedule;
}

/** The reference recipe (the 'faithful' protocol's). */
export const FAITHFUL_RECIPE: Readonly<LinearRecipe> = { epochs: 100, lr: 30, schedule: 'step' };
/** The 'fast' protocol's, on standardized cached features (tuning: README, "Evaluation"). */
export const FAST_RECIPE: Readonly<LinearRecipe> = { epochs: 100, lr: 0.3, schedule: 'cosine' };

export interface LinearOptions {
  /** Default: the protocol's recipe (FAST_RECIPE for `trainLinear`, FAITHFUL_RECIPE for
   * `trainLinearFaithful`). */
  epochs?: number;
  /** Initial learning rate. */
  lr?: number;
  schedule?: LinearSchedule;
  momentum?: number;
  batchSize?: number;
  seed?: number;
  /** Standardize features per dimension with the train set's mean/std (default true; cached
   * features only). */
  standardize?: boolean;
  /** Number of classes (default: largest label + 1 over train and test). */
  numClasses?: number;
  onEpoch?: (epoch: number, epochs: number) => void;
}

interface Recipe extends LinearRecipe {
  momentum: number;
  batchSize: number;
  seed: number;
}

/** The epochs at which the learning rate drops x0.1: 60% and 80% of the run (60, 80 of 100). */
export function linearMilestones(epochs: number): number[] {
  return [Math.round(0.6 * epochs), Math.round(0.8 * epochs)];
}

/** The learning rate of `epoch` (0-based) under `r`. */
export function linearLR(r: LinearRecipe, epoch: number): number {
  return r.schedule === 'cosine' ? cosineLR(r.lr, epoch, r.epochs) : stepLR(r.lr, epoch, linearMilestones(r.epochs));
}

export function checkLinearOptions(o: LinearOptions, defaults: Readonly<LinearRecipe> = FAST_RECIPE): Recipe {
  const epochs = o.epochs ?? defaults.epochs;
  const lr = o.lr ?? defaults.lr;
  const schedule = o.schedule ?? defaults.schedule;
  const batchSize = o.batchSize ?? 256;
  if (!Number.isInteger(epochs) || epochs < 1) throw new RangeError(`linear classifier: epochs must be a positive integer, got ${epochs}`);
  if (!(lr > 0 && Number.isFinite(lr))) throw new RangeError(`linear classifier: lr must be a positive number, got ${lr}`);
  if (schedule !== 'step' && schedule !== 'cosine') throw new RangeError(`linear classifier: schedule must be 'step' or 'cosine', got '${String(schedule)}'`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`linear classifier: batch size must be a positive integer, got ${batchSize}`);
  return { epochs, lr, schedule, momentum: o.momentum ?? 0.9, batchSize, seed: o.seed ?? 0 };
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

/** Features [n, dim] of training rows `perm[from..to)`, made inside the step's scope (no
 * gradient reaches whatever produced them). */
type BatchFeatures = (perm: Uint32Array, from: number, to: number) => Tensor;

interface ClassifierTask {
  /** Training rows, their labels, and how a batch of them becomes features. */
  count: number;
  labels: ArrayLike<number>;
  dim: number;
  classes: number;
  features: BatchFeatures;
  /** Wait for the GPU every this many epochs (bounds the queued work). */
  syncEvery: number;
}

/** A trained linear classifier, on the CPU: logits = x W^T + b. */
export interface LinearClassifier {
  /** [classes, dim], row-major. */
  weight: Float32Array;
  bias: Float32Array;
  dim: number;
  classes: number;
}

/** The one training loop: trains a fresh classifier and reads it back. */
async function fit(task: ClassifierTask, o: Recipe, onEpoch?: (epoch: number, epochs: number) => void): Promise<LinearClassifier> {
  const order = new Rng(o.seed);
  const init = new Rng(o.seed ^ 0x11ea);
  const fc = new Linear(task.dim, task.classes, { random: init.next });
  const opt = new SGD(fc.parameters(), { lr: o.lr, momentum: o.momentum, weightDecay: 0 });
  const N = task.count;
  const ys = new Int32Array(Math.min(o.batchSize, N));
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      opt.lr = linearLR(o, epoch);
      const perm = order.permutation(N);
      for (let from = 0; from < N; from += o.batchSize) {
        const to = Math.min(from + o.batchSize, N);
        const n = to - from;
        for (let i = 0; i < n; i++) ys[i] = task.labels[perm[from + i]];
        scope(() => {
          const x = task.features(perm, from, to);
          const y = Tensor.fromArray(ys.subarray(0, n), [n], { dtype: 'i32' });
          opt.zeroGrad();
          crossEntropy(fc.forward(x), y).backward();
          opt.step();
        });
      }
      onEpoch?.(epoch + 1, o.epochs);
      if ((epoch + 1) % task.syncEvery === 0) await engine().sync();
    }
    const [weight, bias] = [await fc.weight.toArray(), await fc.bias!.toArray()] as Float32Array[];
    return { weight, bias, dim: task.dim, classes: task.classes };
  } finally {
    opt.zeroGrad();
    opt.dispose();
    for (const p of fc.parameters()) p.dispose();
  }
}

/** The classifier's logits for row `i` of `f`, into `out` (length classes). */
export function logitsOf(c: LinearClassifier, f: Features, i: number, out: Float64Array): Float64Array {
  const x = f.data.subarray(i * f.dim, (i + 1) * f.dim);
  for (let k = 0; k < c.classes; k++) {
    let z = c.bias[k];
    const w = c.weight.subarray(k * c.dim, (k + 1) * c.dim);
    for (let d = 0; d < c.dim; d++) z += w[d] * x[d];
    out[k] = z;
  }
  return out;
}

/** Top-1 accuracy (%) of `c` on `f` (ties go to the lower class index). */
export function classifierAccuracy(c: LinearClassifier, f: Features, labels: ArrayLike<number>): number {
  if (f.dim !== c.dim) throw new RangeError(`classifier takes ${c.dim} dims, the features have ${f.dim}`);
  const z = new Float64Array(c.classes);
  let hits = 0;
  for (let i = 0; i < f.count; i++) {
    logitsOf(c, f, i, z);
    let best = 0;
    for (let k = 1; k < c.classes; k++) if (z[k] > z[best]) best = k;
    if (best === labels[i]) hits++;
  }
  return (100 * hits) / f.count;
}

/**
 * The 'fast' protocol's classifier trained on cached features as given (no standardization;
 * `trainLinear` standardizes first). `numClasses` defaults to the largest label + 1.
 */
export async function fitLinear(train: Features, labels: ArrayLike<number>, opts: LinearOptions = {}): Promise<LinearClassifier> {
  checkFeatures('train features', train, labels);
  const o = checkLinearOptions(opts);
  const classes = opts.numClasses ?? numClasses(Array.from(labels).slice(0, train.count));
  const D = train.dim;
  const xs = new Float32Array(Math.min(o.batchSize, train.count) * D);
  const cachedRows: BatchFeatures = (perm, from, to) => {
    for (let i = from; i < to; i++) xs.set(train.data.subarray(perm[i] * D, (perm[i] + 1) * D), (i - from) * D);
    return Tensor.fromArray(xs.subarray(0, (to - from) * D), [to - from, D]);
  };
  return fit({ count: train.count, labels, dim: D, classes, features: cachedRows, syncEvery: 10 }, o, opts.onEpoch);
}

/**
 * The 'fast' protocol's classifier: trained on cached features, by default standardized with
 * the train set's per-dimension mean/std; returns top-1 accuracy in percent on the test
 * features.
 */
export async function trainLinear(trainFeatures: Features, trainLabels: ArrayLike<number>, testFeatures: Features, testLabels: ArrayLike<number>, opts: LinearOptions = {}): Promise<number> {
  checkFeatures('train features', trainFeatures, trainLabels);
  checkFeatures('test features', testFeatures, testLabels);
  if (trainFeatures.dim !== testFeatures.dim) throw new RangeError(`train features have ${trainFeatures.dim} dims, test features ${testFeatures.dim}`);
  checkLinearOptions(opts);
  const classes = opts.numClasses ?? numClasses(Array.from(trainLabels).slice(0, trainFeatures.count), Array.from(testLabels).slice(0, testFeatures.count));
  let train = trainFeatures;
  let test = testFeatures;
  if (opts.standardize ?? true) {
    const stats = featureStats(train);
    train = standardized(train, stats);
    test = standardized(test, stats);
  }
  const c = await fitLinear(train, trainLabels, { ...opts, numClasses: classes });
  return classifierAccuracy(c, test, testLabels);
}

/**
 * The 'faithful' protocol's classifier (the reference recipe): each epoch every training image
 * is augmented anew and sent through the frozen `encoder` in its current state (call inside
 * `withSetting`); raw features. Returns top-1 (%) on `testFeatures`.
 */
export async function trainLinearFaithful(encoder: ResNet, train: ImageSet, testFeatures: Features, testLabels: ArrayLike<number>, aug: Augmenter, opts: LinearOptions & { numClasses: number }): Promise<number> {
  const o = checkLinearOptions(opts, FAITHFUL_RECIPE);
  const staging = new Uint8Array(Math.min(o.batchSize, train.count) * train.channels * train.height * train.width);
  const augmentedImages: BatchFeatures = (perm, from, to) => {
    // The uploaded batch is freed with the rest of the step's scope.
    const batch = aug.uploadBatch(gatherImages(train, from, to, staging, perm), to - from);
    return noGrad(() => encoder.features(aug.views(batch)));
  };
  // Every epoch runs the backbone over the whole set: wait for the GPU after each.
  const c = await fit({
    count: train.count, labels: train.labels, dim: encoder.featureDim, classes: opts.numClasses, features: augmentedImages, syncEvery: 1,
  }, o, opts.onEpoch);
  return classifierAccuracy(c, testFeatures, testLabels);
}
