// Quantization-aware fine-tuning on labelled data, the reference's downstream recipe
// (megvii-research/SSQL-ECCV2022 `workers/linear.py` with `configs/*/resnet18_finetune_*.yaml`),
// platform independent:
//   1. Calibrate once at the target setting, as PTQ evaluation does (BN in eval mode, activation
//      min/max over one augmented training batch; ssql/eval/features.ts `withSetting`).
//   2. Freeze the ranges: activation ranges stay as calibrated, and each layer's per-channel
//      weight range stays at its calibration-time max|w| (the reference computes every scale
//      once, in `set_quant_state(..., w_init=True, a_init=True)`, and keeps it; weights that grow
//      beyond it are clamped).
//   3. Train the backbone and a new FP linear head together with fake quantization (straight-
//      through gradients through every quantizer; the head is never quantized, as the reference
//      sets its bits to 0) by SGD with cross-entropy. BN: train mode (batch statistics, running
//      statistics updated) as the reference's `model.train()`; eval mode for testing.
//      Recipe: SGD momentum 0.9, weight decay 1e-4, lr 0.01 decayed x0.1 at 60% and 80% of the
//      epochs (the reference's 50 epochs with milestones 30 and 40), batch 128, inputs
//      RandomResizedCrop(scale 0.8-1, ratio 3/4-4/3) + horizontal flip, as its CIFAR recipe.
//   4. Top-1 on the test set in the same frozen quantized state, BN in eval mode.
// The result keeps the ranges (`QuantRanges`) so a checkpoint can be evaluated and exported with
// exactly what was fine-tuned.
import { Rng, SGD, Tensor, accuracy, add, crossEntropy, mulScalar, noGrad, scope, stepLR } from '../engine/index.ts';
import { Linear } from '../engine/nn/index.ts';
import { Augmenter } from './data/augment.ts';
import { computeFeatures, linearMilestones, parseSetting, withSetting } from './eval/index.ts';
import type { BitSetting } from './eval/index.ts';
import { checkSet, gatherImages, makeAugmenter, numClasses } from './eval/images.ts';
import type { ImageSet } from './eval/images.ts';
import type { ResNet } from './models/resnet.ts';
import { freezeWeightRanges, readRanges, unfreezeWeightRanges } from './models/ranges.ts';
import type { QuantRanges } from './models/ranges.ts';
import { normalization } from './train.ts';

export interface FinetuneOptions {
  epochs?: number;
  lr?: number;
  batchSize?: number;
  momentum?: number;
  weightDecay?: number;
  /** Calibration batch size (default 256, as evaluation). */
  calibBatch?: number;
  seed?: number;
  /** Called after each epoch with the epoch's mean training loss (one readback an epoch). */
  onEpoch?: (epoch: number, epochs: number, loss: number) => void;
}

export const FINETUNE_DEFAULTS = { epochs: 10, lr: 0.01, batchSize: 128, momentum: 0.9, weightDecay: 1e-4, calibBatch: 256, seed: 0 } as const;

export interface FinetuneResult {
  setting: string;
  /** Test top-1 (%) of the fine-tuned backbone and head at the setting, ranges frozen. */
  top1: number;
  /** The ranges the network was fine-tuned with (empty for 'fp'). */
  ranges: QuantRanges;
  /** The trained FP linear head (the caller owns and disposes its tensors). */
  head: Linear;
  /** Mean training loss of each epoch. */
  losses: number[];
}

function positive(what: string, v: number, integer: boolean): number {
  if (!(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new RangeError(`fine-tuning: ${what} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  return v;
}

/** The reference's fine-tuning augmentation: RandomResizedCrop(0.8-1) and a horizontal flip. */
function finetuneAugmenter(set: ImageSet, seed: number): Augmenter {
  const { mean, std } = normalization(set.channels);
  return new Augmenter({
    channels: set.channels as 1 | 3, height: set.height, width: set.width, mean, std, seed,
    scale: [0.8, 1], ratio: [3 / 4, 4 / 3], flipP: 0.5, jitterP: 0, grayscaleP: 0,
  });
}

/** Fine-tune `encoder` in place at `setting` (see the module comment). */
export async function finetune(encoder: ResNet, train: ImageSet, test: ImageSet, setting: string | BitSetting, opts: FinetuneOptions = {}): Promise<FinetuneResult> {
  const s = typeof setting === 'string' ? parseSetting(setting) : setting;
  checkSet('training images', train);
  checkSet('test images', test);
  if (train.channels !== encoder.config.inChannels) throw new RangeError(`fine-tuning: the images have ${train.channels} channels, the backbone takes ${encoder.config.inChannels}`);
  const o = { ...FINETUNE_DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) } as typeof FINETUNE_DEFAULTS & FinetuneOptions;
  positive('epochs', o.epochs, true);
  positive('the learning rate', o.lr, false);
  positive('the batch size', o.batchSize, true);
  if (o.batchSize < 2) throw new RangeError(`fine-tuning: the batch size must be at least 2 (batch norm), got ${o.batchSize}`);
  const batch = Math.min(o.batchSize, train.count);
  const steps = Math.floor(train.count / batch);
  const classes = numClasses(train.labels.subarray(0, train.count), test.labels.subarray(0, test.count));
  const rng = new Rng(o.seed);
  const head = new Linear(encoder.featureDim, classes, { random: rng.next });
  const opt = new SGD([...encoder.parameters(), ...head.parameters()], { lr: o.lr, momentum: o.momentum, weightDecay: o.weightDecay });
  const aug = finetuneAugmenter(train, rng.int(0, 2 ** 31));
  const order = new Rng(rng.int(0, 2 ** 31));
  const milestones = linearMilestones(o.epochs);
  const staging = new Uint8Array(batch * train.channels * train.height * train.width);
  const labels = new Int32Array(batch);
  const calibration = { calibration: train, calibBatch: o.calibBatch, seed: o.seed, augmenter: makeAugmenter(train, o.seed) };
  const losses: number[] = [];
  try {
    return await withSetting(encoder, s, calibration, async () => {
      if (s.quantized) freezeWeightRanges(encoder);
      try {
        for (let epoch = 0; epoch < o.epochs; epoch++) {
          opt.lr = stepLR(o.lr, epoch, milestones);
          const perm = order.permutation(train.count);
          encoder.train();
          let sum: Tensor | null = null;
          for (let step = 0; step < steps; step++) {
            for (let i = 0; i < batch; i++) labels[i] = train.labels[perm[step * batch + i]];
            const running: Tensor = scope(() => {
              encoder.ctx.weightsChanged();
              const images = aug.uploadBatch(gatherImages(train, step * batch, (step + 1) * batch, staging, perm), batch);
              const logits = head.forward(encoder.features(aug.views(images)));
              images.dispose();
              const l = crossEntropy(logits, Tensor.fromArray(labels, [batch], { dtype: 'i32' }));
              opt.zeroGrad();
              l.backward();
              opt.step();
              const previous = sum;
              return noGrad(() => (previous ? add(previous, l) : mulScalar(l, 1)));
            });
            sum?.dispose();
            sum = running;
          }
          const mean = sum ? (await sum.item()) / steps : NaN;
          sum?.dispose();
          losses.push(mean);
          o.onEpoch?.(epoch + 1, o.epochs, mean);
        }
        encoder.eval();
        const top1 = await testTop1(encoder, head, test);
        const ranges = s.quantized ? await readRanges(encoder) : { weights: {}, activations: {} };
        return { setting: s.name, top1, ranges, head, losses };
      } finally {
        if (s.quantized) unfreezeWeightRanges(encoder);
      }
    });
  } catch (e) {
    for (const t of head.parameters()) t.dispose();
    throw e;
  } finally {
    opt.zeroGrad();
    opt.dispose();
  }
}

/** Top-1 (%) of `head` on the encoder's features of `test`, in its current state. */
export async function testTop1(encoder: ResNet, head: Linear, test: ImageSet): Promise<number> {
  const f = await computeFeatures(encoder, test);
  const hits = scope(() => noGrad(() => {
    const logits = head.forward(Tensor.fromArray(f.data, [f.count, f.dim]));
    return accuracy(logits, Tensor.fromArray(test.labels.subarray(0, test.count), [test.count], { dtype: 'i32' }));
  }));
  const top1 = (await hits.item()) * 100;
  hits.dispose();
  return top1;
}
