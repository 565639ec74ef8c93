// `ssql finetune --checkpoint C --setting 4w4a[,2w4a...]`: quantization-aware fine-tuning of a
// pretrained backbone with a new linear head on labelled data (ssql/finetune.ts), one run per
// setting from the same pretrained weights, against PTQ (the linear probe `ssql eval` reports
// at that setting, fast protocol, same images). Writes OUT/finetune-<setting>.safetensors (the
// backbone, `head.*`, and the frozen ranges in the metadata: `ssql export` uses them),
// OUT/finetune.json and OUT/finetune.md.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError, formatHelp, parseArgs } from '../cli-args.ts';
import type { OptionSpec } from '../cli-args.ts';
import { openCheckpoint, withDevice } from '../cli-common-node.ts';
import { saveSafetensors, writeFileAtomic } from '../checkpoint/files-node.ts';
import { disposeBackbone, loadBackbone } from '../checkpoint/load.ts';
import type { CheckpointContents } from '../checkpoint/load.ts';
import type { SafeTensor } from '../checkpoint/safetensors.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { loadDataset } from '../data/datasets-node.ts';
import { evaluate, parseSettings } from '../eval/index.ts';
import type { BitSetting } from '../eval/index.ts';
import { FINETUNE_DEFAULTS, finetune } from '../finetune.ts';
import type { FinetuneResult } from '../finetune.ts';
import type { ResNet } from '../models/resnet.ts';
import type { QuantRanges } from '../models/ranges.ts';
import { toSafe } from '../train.ts';
import { CheckpointFormatError } from '../format-error.ts';
import type { Command } from './command.ts';

export const FINETUNE_FORMAT = 'ssql-webgpu-finetune-1';

const OPTIONS: Record<string, OptionSpec> = {
  checkpoint: { type: 'string', help: 'pretrained checkpoint: .safetensors (any method, an import) or a PyTorch .pth/.pth.tar (required)' },
  setting: { type: 'string', help: 'bit setting(s) to fine-tune at, comma-separated, e.g. 4w4a or 4w4a,2w4a (2..8 bits; required)' },
  data: { type: 'string', default: 'fashion-mnist', help: 'labelled data: fashion-mnist | mnist:DIR | cifar10:DIR | cifar100:DIR' },
  epochs: { type: 'number', default: FINETUNE_DEFAULTS.epochs, help: 'fine-tuning epochs (lr x0.1 at 60% and 80%; the reference runs 50)' },
  lr: { type: 'number', default: FINETUNE_DEFAULTS.lr, help: 'SGD learning rate (momentum 0.9)' },
  batch: { type: 'number', default: FINETUNE_DEFAULTS.batchSize, help: 'batch size' },
  'weight-decay': { type: 'number', default: FINETUNE_DEFAULTS.weightDecay, help: 'SGD weight decay' },
  subset: { type: 'number', default: 0, help: 'train on the first N training images (0: all)' },
  'eval-test': { type: 'number', default: 0, help: 'test images (0: all)' },
  'calib-batch': { type: 'number', default: FINETUNE_DEFAULTS.calibBatch, help: 'calibration batch size' },
  'linear-epochs': { type: 'number', default: 100, help: 'PTQ baseline: linear classifier epochs (fast protocol, as eval)' },
  'linear-lr': { type: 'number', default: 30, help: 'PTQ baseline: linear classifier learning rate' },
  seed: { type: 'number', default: 0, help: 'random seed (head, order, augmentation, calibration)' },
  out: { type: 'string', default: 'runs/finetune', help: 'output directory' },
  json: { type: 'boolean', help: 'print the report as JSON' },
  help: { type: 'boolean', help: 'show this help' },
};

export interface FinetuneMetadata {
  setting: string;
  ranges: QuantRanges;
  top1: number;
  ptq_top1: number;
  epochs: number;
  lr: number;
  batch: number;
  weight_decay: number;
  source: string;
}

/** The fine-tuning record of a checkpoint written by `ssql finetune`, or null for any other. */
export function finetuneRecord(ck: CheckpointContents): FinetuneMetadata | null {
  if (ck.metadata.format !== FINETUNE_FORMAT) return null;
  try {
    const m = JSON.parse(ck.metadata.finetune ?? '') as FinetuneMetadata;
    if (typeof m.setting === 'string' && m.ranges && typeof m.ranges === 'object') return m;
  } catch {
    // reported below
  }
  throw new CheckpointFormatError(`${ck.source}: a fine-tuned checkpoint whose 'finetune' metadata is missing or not a fine-tuning record`, { file: ck.source, field: 'finetune' });
}

export interface FinetuneReport {
  checkpoint: string;
  data: string;
  train_images: number;
  test_images: number;
  /** Per setting: PTQ linear-probe top-1 and fine-tuned top-1 (%), and the checkpoint. */
  results: Record<string, { ptq: number; finetuned: number; checkpoint: string }>;
}

function first(set: LabeledImages, n: number): LabeledImages {
  if (!n || n >= set.count) return set;
  const per = set.channels * set.height * set.width;
  return { ...set, images: set.images.subarray(0, n * per), labels: set.labels.subarray(0, n), count: n };
}

/** The fine-tuned checkpoint: the backbone under `encoder.`, the head, and the metadata that
 * makes it loadable (the source's config and architecture) plus the fine-tuning record. */
async function fineTunedCheckpoint(encoder: ResNet, result: FinetuneResult, source: CheckpointContents, meta: FinetuneMetadata): Promise<{ tensors: Record<string, SafeTensor>; metadata: Record<string, string> }> {
  const tensors: Record<string, SafeTensor> = {};
  for (const [name, t] of encoder.stateDict()) tensors[`encoder.${name}`] = await toSafe(t);
  tensors['head.weight'] = await toSafe(result.head.weight);
  if (result.head.bias) tensors['head.bias'] = await toSafe(result.head.bias);
  const metadata: Record<string, string> = { format: FINETUNE_FORMAT, finetune: JSON.stringify(meta) };
  for (const key of ['config', 'architecture']) if (source.metadata[key] !== undefined) metadata[key] = source.metadata[key];
  return { tensors, metadata };
}

export function reportMarkdown(r: FinetuneReport): string {
  const rows = Object.entries(r.results).map(([s, v]) => `| ${s} | ${v.ptq.toFixed(2)} | ${v.finetuned.toFixed(2)} | ${(v.finetuned - v.ptq >= 0 ? '+' : '') + (v.finetuned - v.ptq).toFixed(2)} |`);
  return [
    `Quantization-aware fine-tuning of ${r.checkpoint} on ${r.data} (${r.train_images} training, ${r.test_images} test images): test top-1 (%).`,
    'PTQ: the frozen backbone calibrated at the setting with a linear classifier (as `ssql eval`); fine-tuned: backbone and head trained with fake quantization, ranges frozen.',
    '',
    '| setting | PTQ | fine-tuned | difference |',
    '|---|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n');
}

export const FINETUNE_COMMAND: Command = {
  name: 'finetune',
  summary: 'quantization-aware fine-tuning at a bit setting with a linear head, against PTQ',
  async run(argv) {
    const a = parseArgs(argv, OPTIONS);
    if (a.help) {
      process.stdout.write(formatHelp('usage: ssql finetune --checkpoint C --setting 4w4a [options]', FINETUNE_COMMAND.summary, OPTIONS));
      return 0;
    }
    if (!a.checkpoint) throw new UsageError('--checkpoint PATH is required');
    if (!a.setting) throw new UsageError('--setting is required (e.g. 4w4a, or 4w4a,2w4a)');
    let settings: BitSetting[];
    try {
      settings = parseSettings(a.setting as string);
    } catch (e) {
      throw new UsageError(`--setting: ${(e as Error).message}`);
    }
    for (const s of settings) if (!s.quantized || s.wbit > 8 || s.abit > 8) throw new UsageError(`--setting ${s.name}: fine-tuning is at a quantized setting of 2..8 bits (export holds 8-bit integers)`);
    for (const k of ['epochs', 'batch', 'calib-batch', 'linear-epochs']) {
      const v = a[k] as number;
      if (!Number.isInteger(v) || v < 1) throw new UsageError(`--${k} must be a positive integer, got ${v}`);
    }
    if ((a.batch as number) < 2) throw new UsageError(`--batch must be at least 2 (batch norm), got ${a.batch}`);
    if (!((a.lr as number) > 0)) throw new UsageError(`--lr must be positive, got ${a.lr}`);
    const out = a.out as string;
    const quiet = Boolean(a.json);
    let report: FinetuneReport | null = null;
    await withDevice(async () => {
      const train = first(loadDataset(a.data as string, 'train'), a.subset as number);
      const test = first(loadDataset(a.data as string, 'test'), a['eval-test'] as number);
      const checkpoint = openCheckpoint(a.checkpoint as string, quiet);
      mkdirSync(out, { recursive: true });
      const results: FinetuneReport['results'] = {};
      for (const s of settings) {
        const encoder = loadBackbone(checkpoint);
        try {
          const say = (line: string) => { if (!quiet) process.stderr.write(`${line}\n`); };
          say(`${s.name}: PTQ linear evaluation`);
          const ptq = await evaluate(encoder, train, test, {
            settings: [s.name], protocol: 'fast', epochs: a['linear-epochs'] as number, lr: a['linear-lr'] as number, seed: a.seed as number, calibBatch: a['calib-batch'] as number,
          });
          say(`${s.name}: PTQ top-1 ${ptq.results[s.name].toFixed(2)}%; fine-tuning`);
          const r = await finetune(encoder, train, test, s, {
            epochs: a.epochs as number, lr: a.lr as number, batchSize: a.batch as number, weightDecay: a['weight-decay'] as number,
            calibBatch: a['calib-batch'] as number, seed: a.seed as number,
            onEpoch: (e, n, loss) => say(`${s.name}: epoch ${e}/${n} loss ${loss.toFixed(4)}`),
          });
          const path = join(out, `finetune-${s.name}.safetensors`);
          const meta: FinetuneMetadata = {
            setting: s.name, ranges: r.ranges, top1: r.top1, ptq_top1: ptq.results[s.name], epochs: a.epochs as number, lr: a.lr as number,
            batch: a.batch as number, weight_decay: a['weight-decay'] as number, source: a.checkpoint as string,
          };
          const { tensors, metadata } = await fineTunedCheckpoint(encoder, r, checkpoint, meta);
          saveSafetensors(path, tensors, metadata);
          for (const t of r.head.parameters()) t.dispose();
          results[s.name] = { ptq: ptq.results[s.name], finetuned: r.top1, checkpoint: path };
          say(`${s.name}: fine-tuned top-1 ${r.top1.toFixed(2)}%; wrote ${path}`);
        } finally {
          disposeBackbone(encoder);
        }
      }
      report = { checkpoint: a.checkpoint as string, data: a.data as string, train_images: train.count, test_images: test.count, results };
      writeFileAtomic(join(out, 'finetune.json'), JSON.stringify(report, null, 2) + '\n');
      writeFileAtomic(join(out, 'finetune.md'), reportMarkdown(report));
    });
    const r = report as FinetuneReport | null;
    if (!r) throw new Error('finetune: no report');
    if (quiet) process.stdout.write(JSON.stringify(r) + '\n');
    else process.stdout.write(`${reportMarkdown(r)}wrote ${join(out, 'finetune.md')}, finetune.json\n`);
    return 0;
  },
};
