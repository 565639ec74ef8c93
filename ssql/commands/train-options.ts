// The options of `ssql pretrain` (`compare` shares TRAIN_OPTIONS) and their validation: every
// number is checked here, before any file is opened or the GPU starts, as a UsageError that
// names the flag and the allowed range.
import { UsageError, bitRangeOption, integerOption, realOption } from '../cli-args.ts';
import type { OptionSpec, ParsedArgs } from '../cli-args.ts';
import { DEFAULT_CONFIG } from '../train.ts';
import type { TrainConfig } from '../train.ts';
import { METHODS, METHOD_NAMES } from '../methods/registry.ts';
import { WEIGHT_GRADS } from '../models/quant.ts';
import type { WeightGrad } from '../models/quant.ts';
import type { PretrainOptions } from './pretrain-node.ts';
import { methodSettingOptions, methodSettingsFromArgs } from './method-settings.ts';

/** Weight bit-widths below 2 leave the symmetric grid one level; activations may go to 1 bit. */
export const WBITS_RANGE = [2, 8] as const;
export const ABITS_RANGE = [1, 8] as const;
/** Seeds feed 32-bit generators. */
const MAX_SEED = 0xffffffff;

export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  method: {
    type: 'string', default: DEFAULT_CONFIG.method, choices: METHOD_NAMES, help: 'pretraining method',
    choiceHelp: Object.fromEntries(METHODS.map((m) => [m.name, m.description])),
  },
  model: { type: 'string', default: DEFAULT_CONFIG.model, choices: ['tiny', 'small', 'resnet18', 'resnet34', 'resnet50'], help: 'backbone (small: 16/32/64/128, one block a stage; tiny: 4/8/16/32)' },
  data: { type: 'string', default: 'fashion-mnist', help: 'fashion-mnist | mnist:DIR (IDX files) | cifar10:DIR | cifar100:DIR' },
  epochs: { type: 'number', default: DEFAULT_CONFIG.epochs, help: 'training epochs (a positive integer)' },
  batch: { type: 'number', default: DEFAULT_CONFIG.batchSize, help: 'batch size (at least 2: batch norm needs it)' },
  lr: { type: 'number', default: DEFAULT_CONFIG.lr, help: 'base learning rate, > 0 (cosine decay per epoch)' },
  momentum: { type: 'number', default: DEFAULT_CONFIG.momentum, help: 'SGD momentum, in [0, 1)' },
  'weight-decay': { type: 'number', default: DEFAULT_CONFIG.weightDecay, help: 'SGD weight decay, >= 0' },
  'proj-dim': { type: 'number', default: DEFAULT_CONFIG.projDim, help: 'projector width (limited by the adapter\'s largest storage buffer)' },
  'pred-hidden': { type: 'number', default: DEFAULT_CONFIG.predHidden, help: 'predictor bottleneck width' },
  crop: { type: 'number', default: 0, help: 'random-resized-crop output size (0: the image size; smaller trains faster)' },
  wbits: { type: 'string', default: DEFAULT_CONFIG.wbits.join('-'), help: `SSQL weight bit range within ${WBITS_RANGE.join('-')}, e.g. 2-8` },
  abits: { type: 'string', default: DEFAULT_CONFIG.abits.join('-'), help: `SSQL activation bit range within ${ABITS_RANGE.join('-')}, e.g. 4-8` },
  'weight-grad': {
    type: 'string', default: DEFAULT_CONFIG.weightGrad, choices: WEIGHT_GRADS, help: 'backward of the weight quantizers (SSQL methods)',
    choiceHelp: { reference: 'the reference code\'s: straight-through plus the gradient through the weight scale', ste: 'plain straight-through, the scale a constant' },
  },
  subset: { type: 'number', default: 0, help: 'train on the first N images only (0: all)' },
  seed: { type: 'number', default: 0, help: `random seed, 0..${MAX_SEED} (weights, augmentation, data order, bits)` },
  out: { type: 'string', default: 'runs/pretrain', help: 'output directory (checkpoint.safetensors, train.jsonl)' },
  resume: { type: 'boolean', help: 'continue from OUT/checkpoint.safetensors (same options, except: --epochs may grow; --lr, --weight-decay, --momentum may change)' },
  'log-every': { type: 'number', default: 20, help: 'read the loss back (and check it is finite) every N steps' },
  'max-steps': { type: 'number', help: 'stop after N steps in this run (default: no limit)' },
  ...methodSettingOptions(),
  json: { type: 'boolean', help: 'print the final summary as JSON' },
  help: { type: 'boolean', help: 'show this help' },
};

/** Options only `pretrain` has (how a run keeps its progress). */
export const RUN_OPTIONS: Record<string, OptionSpec> = {
  init: { type: 'string', help: 'start from the backbone (and heads of matching shape) of a checkpoint: .safetensors or PyTorch .pth/.pth.tar (ignored with --resume)' },
  force: { type: 'boolean', help: 'start over in an --out that holds a checkpoint, replacing it' },
  'checkpoint-every': { type: 'number', default: 0, help: 'also write the checkpoint every N steps (0: off); it is always written at each epoch end and on stopping' },
  'checkpoint-minutes': { type: 'number', default: 10, help: 'also write the checkpoint when this many minutes passed since the last (0: off)' },
};

/** The training config the options describe (UsageError naming the first bad flag). */
export function trainConfigFromArgs(a: ParsedArgs): TrainConfig {
  return {
    method: a.method as TrainConfig['method'], model: a.model as TrainConfig['model'],
    projDim: integerOption(a, 'proj-dim', 1), predHidden: integerOption(a, 'pred-hidden', 1),
    batchSize: integerOption(a, 'batch', 2), epochs: integerOption(a, 'epochs', 1),
    lr: realOption(a, 'lr', { above: 0 }), momentum: realOption(a, 'momentum', { atLeast: 0, below: 1 }),
    weightDecay: realOption(a, 'weight-decay', { atLeast: 0 }), seed: integerOption(a, 'seed', 0, MAX_SEED),
    wbits: bitRangeOption(a, 'wbits', ...WBITS_RANGE), abits: bitRangeOption(a, 'abits', ...ABITS_RANGE),
    subset: integerOption(a, 'subset', 0), cropSize: integerOption(a, 'crop', 0),
    weightGrad: a['weight-grad'] as WeightGrad,
    ...methodSettingsFromArgs(a, a.method as string),
  };
}

/** How a `pretrain` run logs, stops and keeps its progress (UsageError naming the bad flag). */
export function pretrainOptionsFromArgs(a: ParsedArgs): PretrainOptions {
  if (a.resume && a.force) throw new UsageError('--resume and --force contradict each other: --resume continues the checkpoint in --out, --force replaces it');
  return {
    resume: Boolean(a.resume), force: Boolean(a.force), quiet: Boolean(a.json), init: a.init as string | undefined,
    logEvery: integerOption(a, 'log-every', 1),
    maxSteps: a['max-steps'] === undefined ? undefined : integerOption(a, 'max-steps', 1),
    checkpointEvery: a['checkpoint-every'] === undefined ? undefined : integerOption(a, 'checkpoint-every', 0),
    checkpointMinutes: a['checkpoint-minutes'] === undefined ? undefined : realOption(a, 'checkpoint-minutes', { atLeast: 0 }),
  };
}
