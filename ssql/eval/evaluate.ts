// Evaluation of a pretrained backbone after post-training quantization (docs/method.md#evaluation), platform
// independent: for each bit setting ('fp', '8w8a', '4w4a', '2w4a', ...) the backbone is frozen
// and quantized with one calibration batch (./features.ts), then a linear classifier (FP) is
// trained on its features and tested top-1 on the test set (./linear.ts), optionally also kNN
// (./knn.ts). Test features never use augmentation (/255 and normalize only).
//
// Two protocols:
//   'faithful'  the reference recipe: the training images are augmented anew every epoch
//               (`Augmenter.views`) and sent through the frozen quantized backbone; SGD
//               momentum 0.9, no weight decay, lr 30, 100 epochs, x0.1 at 60% and 80% of the
//               epochs (60 and 80). Raw features, as the reference.
//   'fast'      features of the train and test sets computed once without augmentation and
//               cached on the CPU ([N, D] Float32Array), standardized per dimension with the
//               train set's mean and std (the test set with the same constants), then a
//               classifier with FAST_RECIPE (./linear.ts). Without augmentation noise, a
//               learning rate on raw features is at the mercy of each backbone's feature scale
//               (which differs between SimSiam and SSQL and between bit-widths); standardizing
//               is an affine map, so a linear classifier can represent exactly the same
//               decision functions, and one recipe fits every backbone.
//
// Every setting is evaluated independently of the others (its own augmenter from `seed`: the
// same calibration batch, augmented the same way, for every setting), so evaluating settings
// one call at a time (compare's resume) gives the same numbers as all in one call.
import type { ResNet } from '../models/resnet.ts';
import { computeFeatures, withSetting } from './features.ts';
import type { QuantizeOptions } from './features.ts';
import { checkSet, makeAugmenter, numClasses } from './images.ts';
import type { ImageSet } from './images.ts';
import { knnTop1 } from './knn.ts';
import { FAITHFUL_RECIPE, FAST_RECIPE, checkLinearOptions, trainLinear, trainLinearFaithful } from './linear.ts';
import type { LinearSchedule } from './linear.ts';
import { DEFAULT_SETTINGS, parseSettings } from './settings.ts';

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
  /** Linear classifier epochs, initial lr and schedule (default: the protocol's recipe,
   * FAST_RECIPE or FAITHFUL_RECIPE). */
  epochs?: number;
  lr?: number;
  schedule?: LinearSchedule;
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
 * (docs/method.md#evaluation; protocols in the file header). Calibration uses the training set. */
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
  const recipe = protocol === 'fast' ? FAST_RECIPE : FAITHFUL_RECIPE;
  const lin = checkLinearOptions({ epochs: opts.epochs, lr: opts.lr, schedule: opts.schedule, batchSize: opts.batchSize, seed }, recipe);
  const classes = numClasses(train.labels.subarray(0, train.count), test.labels.subarray(0, test.count));
  const results: Record<string, number> = {};
  const knn: Record<string, number> | undefined = opts.knn ? {} : undefined;
  for (const [index, s] of settings.entries()) {
    const aug = makeAugmenter(train, seed);
    const featOpts = { batchSize: opts.featureBatch, augmenter: aug };
    const quant: QuantizeOptions = { calibration: train, calibBatch: opts.calibBatch, seed, augmenter: aug };
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
