// Node only: the evaluation options `ssql eval` and `ssql compare` share, validated as usage
// errors naming the flag before any work starts, and the PTQ evaluation of an encoder on a
// named dataset (ssql/eval/ does the work).
import { UsageError, integerOption, realOption } from '../cli-args.ts';
import type { OptionSpec, ParsedArgs } from '../cli-args.ts';
import { loadDataset } from '../data/datasets-node.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { DEFAULT_SETTINGS, FAITHFUL_RECIPE, FAST_RECIPE, evaluate, parseSettings } from '../eval/index.ts';
import type { EvalProtocol, EvalResult, LinearSchedule } from '../eval/index.ts';
import type { ResNet } from '../models/resnet.ts';

/** Default probe sizes: 10,000 training images and the whole test set (10,000 for
 * Fashion-MNIST and CIFAR), enough to resolve about a point (README, "Evaluation"). */
export const DEFAULT_EVAL_TRAIN = 10_000;

export const EVAL_OPTIONS: Record<string, OptionSpec> = {
  settings: { type: 'string', default: DEFAULT_SETTINGS.join(','), help: 'bit settings, comma-separated (fp, 8w8a, 4w4a, 2w4a, ...)' },
  protocol: { type: 'string', default: 'fast', choices: ['fast', 'faithful'], help: 'fast: cached un-augmented, standardized features; faithful: the reference recipe (augmented inputs every epoch)' },
  'linear-epochs': { type: 'number', help: `linear classifier epochs (default: fast ${FAST_RECIPE.epochs}, faithful ${FAITHFUL_RECIPE.epochs})` },
  'linear-lr': { type: 'number', help: `linear classifier learning rate (default: fast ${FAST_RECIPE.lr} ${FAST_RECIPE.schedule}, faithful ${FAITHFUL_RECIPE.lr} ${FAITHFUL_RECIPE.schedule})` },
  knn: { type: 'boolean', help: 'also report kNN top-1 (k=200, cosine)' },
  'eval-train': { type: 'number', default: DEFAULT_EVAL_TRAIN, help: 'training images for the classifier (0: all)' },
  'eval-test': { type: 'number', default: 0, help: 'test images (0: all)' },
};

/** The evaluation, validated. */
export interface EvalSpec {
  settings: string[];
  protocol: EvalProtocol;
  epochs: number;
  lr: number;
  schedule: LinearSchedule;
  knn: boolean;
  /** Image counts asked for (0: all). */
  evalTrain: number;
  evalTest: number;
}

/** Every evaluation option checked, as a usage error naming the flag. */
export function evalSpecFromArgs(a: ParsedArgs): EvalSpec {
  let settings: string[];
  try {
    settings = parseSettings(a.settings as string).map((s) => s.name);
  } catch (e) {
    throw new UsageError(`--settings: ${(e as Error).message}`);
  }
  const protocol = a.protocol as EvalProtocol;
  const recipe = protocol === 'faithful' ? FAITHFUL_RECIPE : FAST_RECIPE;
  const epochs = a['linear-epochs'] === undefined ? recipe.epochs : integerOption(a, 'linear-epochs', 1);
  const lr = a['linear-lr'] === undefined ? recipe.lr : realOption(a, 'linear-lr', { above: 0 });
  return {
    settings, protocol, epochs, lr, schedule: recipe.schedule, knn: Boolean(a.knn),
    evalTrain: integerOption(a, 'eval-train', 0), evalTest: integerOption(a, 'eval-test', 0),
  };
}

/** The first `n` images of a set (all when n is 0). */
export function head(set: LabeledImages, n: number): LabeledImages {
  if (!n || n >= set.count) return set;
  const per = set.channels * set.height * set.width;
  return { ...set, images: set.images.subarray(0, n * per), labels: set.labels.subarray(0, n), count: n };
}

/** The probe's images: the first `evalTrain` training and `evalTest` test images. */
export interface EvalData {
  train: LabeledImages;
  test: LabeledImages;
}

export function loadEvalData(dataSpec: string, spec: EvalSpec, fullTrain = loadDataset(dataSpec, 'train')): EvalData {
  return { train: head(fullTrain, spec.evalTrain), test: head(loadDataset(dataSpec, 'test'), spec.evalTest) };
}

/** PTQ evaluation of `encoder` at `settings` (default: the spec's), printing one line per
 * setting to stderr unless quiet; `onSetting` sees each setting's results as they come. */
export async function evaluateEncoder(encoder: ResNet, data: EvalData, spec: EvalSpec, seed: number, label: string, opts: {
  quiet?: boolean;
  settings?: string[];
  onSetting?: (setting: string, top1: number, knn: number | undefined) => void;
} = {}): Promise<EvalResult> {
  return evaluate(encoder, data.train, data.test, {
    settings: opts.settings ?? spec.settings, protocol: spec.protocol, epochs: spec.epochs, lr: spec.lr, schedule: spec.schedule,
    knn: spec.knn, seed,
    onProgress: (p) => {
      if (p.stage === 'done') opts.onSetting?.(p.setting, p.top1!, p.knn);
      if (opts.quiet) return;
      const clear = process.stderr.isTTY ? '\r\x1b[K' : '';
      if (p.stage === 'done') process.stderr.write(`${clear}${label} ${p.setting}: linear top-1 ${p.top1?.toFixed(2)}%${p.knn !== undefined ? `, kNN ${p.knn.toFixed(2)}%` : ''}\n`);
      else if (process.stderr.isTTY) process.stderr.write(`\r${label} ${p.setting} (${p.index + 1}/${p.total}): ${p.stage}${p.epoch !== undefined ? ` epoch ${p.epoch}/${p.epochs}` : ''}\x1b[K`);
    },
  });
}
