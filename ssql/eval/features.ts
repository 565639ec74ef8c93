// Frozen, post-training-quantized feature extraction (docs/method.md#evaluation): the backbone is frozen (no
// gradients), BN runs in eval mode (running statistics), the projector is dropped
// (`ResNet.features`: the pooled backbone output). For a quantized setting the activation
// ranges are calibrated once, as the min/max over ONE augmented training batch (default 256
// images) run in 'calibrate' mode; the weight ranges are per output channel from the frozen
// weights (the quantizers compute them). Then 'quantize' mode at the setting's wbit/abit; the
// stem stays 8w8a and the projector 8-bit by role (docs/method.md#placement). 'fp' skips all of this.
import { Rng, noGrad, scope, tunePending, tuningEnabled } from '../../engine/index.ts';
import type { Augmenter } from '../data/augment.ts';
import type { ResNet } from '../models/resnet.ts';
import { checkSet, gatherImages, makeAugmenter } from './images.ts';
import type { ImageSet } from './images.ts';
import { parseSetting } from './settings.ts';
import type { BitSetting } from './settings.ts';

/** Features cached on the CPU: `data` is row-major [count, dim]. */
export interface Features {
  data: Float32Array;
  count: number;
  dim: number;
}

export function checkFeatures(what: string, f: Features, labels: ArrayLike<number>): void {
  if (f.data.length !== f.count * f.dim) throw new RangeError(`${what}: ${f.data.length} values for ${f.count} x ${f.dim} features`);
  if (f.count <= 0 || f.dim <= 0) throw new RangeError(`${what}: empty features (${f.count} x ${f.dim})`);
  if (labels.length < f.count) throw new RangeError(`${what}: ${f.count} feature rows but ${labels.length} labels`);
  for (let i = 0; i < f.count; i++) {
    const l = labels[i];
    if (!Number.isInteger(l) || l < 0) throw new RangeError(`${what}: label ${l} at ${i} is not a class index (integer >= 0)`);
  }
}

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
 * errors) the quantization setting and the train/eval mode are what they were.
 */
export async function withSetting<T>(encoder: ResNet, setting: string | BitSetting, opts: QuantizeOptions, fn: () => Promise<T>, fallbackCalibration?: ImageSet): Promise<T> {
  const s = typeof setting === 'string' ? parseSetting(setting) : setting;
  const ctx = encoder.ctx;
  const wasTraining = encoder.training;
  encoder.eval();
  try {
    if (!s.quantized) return await ctx.withQuantization({ mode: 'off' }, fn);
    const calib = opts.calibration ?? fallbackCalibration;
    if (!calib) throw new RangeError(`setting ${s.name}: no calibration images`);
    calibrate(encoder, calib, opts);
    return await ctx.withQuantization({ mode: 'quantize', wbit: s.wbit, abit: s.abit }, fn);
  } finally {
    encoder.train(wasTraining);
  }
}

/** Reset all ranges and record them over one augmented batch of `calib` (BN as it is set). */
function calibrate(encoder: ResNet, calib: ImageSet, opts: QuantizeOptions): void {
  checkSet('calibration images', calib);
  const n = Math.min(opts.calibBatch ?? 256, calib.count);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`calibration batch must be a positive integer, got ${opts.calibBatch}`);
  const seed = opts.seed ?? 0;
  const order = new Rng(seed ^ 0x5eed).permutation(calib.count);
  const staging = new Uint8Array(n * calib.channels * calib.height * calib.width);
  const aug = opts.augmenter ?? makeAugmenter(calib, seed);
  encoder.ctx.newStep();
  encoder.ctx.withQuantization({ mode: 'calibrate' }, () => scope(() => noGrad(() => {
    const batch = aug.uploadBatch(gatherImages(calib, 0, n, staging, order), n);
    encoder.features(aug.views(batch));
    batch.dispose();
  })));
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
    // The first batch queued its shapes for measuring (when tuning is on): the rest use the
    // fastest kernels (engine/tuning.ts).
    if (from === 0 && tuningEnabled()) await tunePending();
  }
  return { data, count: set.count, dim };
}

/** Pooled backbone features of `set` at `setting` (frozen, BN eval, projector dropped), with
 * PTQ calibration on one augmented batch of `opts.calibration` (default `set` itself). */
export async function extractFeatures(encoder: ResNet, set: ImageSet, setting: string | BitSetting, opts: FeatureOptions = {}): Promise<Features> {
  return withSetting(encoder, setting, opts, () => computeFeatures(encoder, set, opts), set);
}
