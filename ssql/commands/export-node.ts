// `ssql export --checkpoint C --setting 4w4a --format onnx|packed|both --out PATH`: a backbone
// (any method's checkpoint, a fine-tuned one, or a PyTorch file) at one bit setting, as a QDQ
// ONNX model (ssql/export/onnx.ts) and/or its integer weights packed at the setting's width
// (ssql/export/packed.ts). Quantized settings are calibrated as evaluation calibrates them: one
// augmented batch of training images (the batch `ssql eval` draws for its first setting with
// the same --seed and --calib-batch), BN in eval mode. An optional FP linear head follows the
// features (`logits`). Files are written to a temporary name, then renamed.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Linear } from '../../engine/index.ts';
import { UsageError, formatHelp, parseArgs } from '../cli-args.ts';
import type { OptionSpec } from '../cli-args.ts';
import { loadNet, withDevice } from '../cli-common-node.ts';
import { loadSafetensors } from '../checkpoint/files-node.ts';
import type { SafeTensor } from '../checkpoint/safetensors.ts';
import { loadDataset } from '../data/datasets-node.ts';
import { parseSetting } from '../eval/index.ts';
import type { BitSetting } from '../eval/index.ts';
import { makeAugmenter } from '../eval/images.ts';
import { saveExport } from '../export/export-node.ts';
import { captureQuantizedModel, captureWithRanges } from '../export/model.ts';
import { applyRanges } from '../models/ranges.ts';
import { finetuneRecord } from './finetune-node.ts';
import type { ExportModel } from '../export/model.ts';
import { normalization } from '../train.ts';
import { loadInto } from '../train.ts';
import { CheckpointFormatError } from '../format-error.ts';
import type { Command } from './command.ts';

const OPTIONS: Record<string, OptionSpec> = {
  checkpoint: { type: 'string', help: 'checkpoint: .safetensors (pretrain, finetune, import) or a PyTorch .pth/.pth.tar (required)' },
  setting: { type: 'string', help: "bit setting: 'fp' or <w>w<a>a with 2..8 bits, e.g. 8w8a, 4w4a, 2w4a (required)" },
  format: { type: 'string', default: 'onnx', choices: ['onnx', 'packed', 'both'], help: 'onnx: QDQ ONNX model; packed: integer weights packed at the setting\'s width (safetensors); both' },
  out: { type: 'string', help: 'output file: the .onnx model (onnx, both) or the packed .safetensors (packed) (required)' },
  weights: { type: 'string', help: 'with --format both: the packed weights file (default: OUT with .onnx replaced by .packed.safetensors)' },
  head: { type: 'string', default: 'auto', help: "linear head after the features: 'auto' (the checkpoint's head.weight/head.bias, e.g. from finetune, if it has one), 'none', or a safetensors file holding head.weight [classes, features] and head.bias" },
  data: { type: 'string', default: 'fashion-mnist', help: 'training data for the calibration batch: fashion-mnist | mnist:DIR | cifar10:DIR | cifar100:DIR' },
  'calib-batch': { type: 'number', default: 256, help: 'calibration batch size (as eval)' },
  seed: { type: 'number', default: 0, help: 'seeds the calibration batch (as eval)' },
  json: { type: 'boolean', help: 'print a JSON summary' },
  help: { type: 'boolean', help: 'show this help' },
};

export interface ExportSummary {
  setting: string;
  onnx: string | null;
  packed: string | null;
  head: string | null;
  calibration: string | null;
}

/** The output paths of `--format`. */
function outputs(format: string, out: string, weights: string | undefined): { onnx?: string; weights?: string } {
  if (format === 'onnx') return { onnx: out };
  if (format === 'packed') return { weights: out };
  return { onnx: out, weights: weights ?? `${out.replace(/\.onnx$/i, '')}.packed.safetensors` };
}

/** A linear head from `head.weight` [classes, featureDim] and optional `head.bias` [classes]. */
export function linearHead(tensors: Record<string, SafeTensor>, featureDim: number, source: string): Linear {
  const w = tensors['head.weight'];
  const b = tensors['head.bias'];
  if (!w) throw new CheckpointFormatError(`${source}: no 'head.weight' (a linear head [classes, ${featureDim}])`, { file: source, field: 'head.weight' });
  if (w.shape.length !== 2 || w.shape[1] !== featureDim) {
    throw new CheckpointFormatError(`${source}: 'head.weight' is [${w.shape.join(', ')}], the backbone gives ${featureDim} features: expected [classes, ${featureDim}]`, { file: source, field: 'head.weight' });
  }
  if (b && (b.shape.length !== 1 || b.shape[0] !== w.shape[0])) {
    throw new CheckpointFormatError(`${source}: 'head.bias' is [${b.shape.join(', ')}], expected [${w.shape[0]}]`, { file: source, field: 'head.bias' });
  }
  const head = new Linear(featureDim, w.shape[0], { bias: Boolean(b), random: () => 0.5 });
  loadInto(head, b ? { weight: w, bias: b } : { weight: w }, source);
  return head;
}

export const EXPORT_COMMAND: Command = {
  name: 'export',
  summary: 'export a backbone at one bit setting as QDQ ONNX and/or packed integer weights',
  async run(argv) {
    const a = parseArgs(argv, OPTIONS);
    if (a.help) {
      process.stdout.write(formatHelp('usage: ssql export --checkpoint C --setting 4w4a [--format onnx|packed|both] --out PATH [options]', EXPORT_COMMAND.summary, OPTIONS));
      return 0;
    }
    if (!a.checkpoint) throw new UsageError('--checkpoint PATH is required');
    if (!a.setting) throw new UsageError('--setting is required (e.g. 4w4a, 8w8a, fp)');
    if (!a.out) throw new UsageError('--out PATH is required');
    let setting: BitSetting;
    try {
      setting = parseSetting(a.setting as string);
    } catch (e) {
      throw new UsageError(`--setting: ${(e as Error).message}`);
    }
    if (setting.quantized && (setting.wbit > 8 || setting.abit > 8)) throw new UsageError(`--setting ${setting.name}: ONNX's 8-bit integer types hold 2..8 bits`);
    const calibBatch = a['calib-batch'] as number;
    if (!Number.isInteger(calibBatch) || calibBatch < 1) throw new UsageError(`--calib-batch must be a positive integer, got ${calibBatch}`);
    if (a.weights && a.format !== 'both') throw new UsageError('--weights is for --format both (with packed, --out is the weights file)');
    const paths = outputs(a.format as string, a.out as string, a.weights as string | undefined);
    let summary: ExportSummary | null = null;
    await withDevice(async () => {
      summary = await exportCheckpoint(a.checkpoint as string, setting, paths, {
        head: a.head as string, data: a.data as string, calibBatch, seed: a.seed as number, quiet: Boolean(a.json),
      });
    });
    const s = summary as ExportSummary | null;
    if (!s) throw new Error('export: nothing was written');
    if (a.json) process.stdout.write(JSON.stringify(s) + '\n');
    else {
      for (const [what, p] of [['ONNX model', s.onnx], ['packed weights', s.packed]] as const) if (p) process.stdout.write(`wrote ${what} ${p}\n`);
      process.stdout.write(`setting ${s.setting}${s.head ? `, head ${s.head}` : ''}${s.calibration ? `; calibrated on ${s.calibration}` : ''}\n`);
    }
    return 0;
  },
};

export interface ExportOptions {
  head: string;
  data: string;
  calibBatch: number;
  seed: number;
  quiet: boolean;
}

/** Load, calibrate, capture and write (the command without its argument handling). */
export async function exportCheckpoint(path: string, setting: BitSetting, paths: { onnx?: string; weights?: string }, opts: ExportOptions): Promise<ExportSummary> {
  const { encoder, checkpoint } = loadNet(path, opts.quiet);
  let head: Linear | null = null;
  let headSource: string | null = null;
  if (opts.head === 'auto') {
    if (checkpoint.tensors['head.weight']) [head, headSource] = [linearHead(checkpoint.tensors, encoder.featureDim, path), path];
  } else if (opts.head !== 'none') {
    [head, headSource] = [linearHead(loadSafetensors(opts.head).tensors, encoder.featureDim, opts.head), opts.head];
  }
  let calibration: string | null = null;
  const channels = encoder.config.inChannels;
  let model: ExportModel;
  const tuned = finetuneRecord(checkpoint);
  if (tuned && setting.quantized && tuned.setting === setting.name) {
    // Exactly the network that was fine-tuned: its frozen weight and activation ranges.
    applyRanges(encoder, tuned.ranges, path);
    calibration = `the ranges frozen by fine-tuning at ${tuned.setting}`;
    model = await captureWithRanges(encoder, setting, { head: head ?? undefined });
  } else if (setting.quantized) {
    if (tuned && !opts.quiet) process.stderr.write(`${path} was fine-tuned at ${tuned.setting}; ${setting.name} is calibrated afresh (PTQ of the fine-tuned weights)\n`);
    const train = loadDataset(opts.data, 'train');
    if (train.channels !== channels) throw new UsageError(`--data ${opts.data} has ${train.channels}-channel images, the backbone takes ${channels}`);
    const n = Math.min(opts.calibBatch, train.count);
    calibration = `one augmented batch of ${n} ${opts.data} training images (seed ${opts.seed})`;
    model = await captureQuantizedModel(encoder, setting, { calibration: train, calibBatch: n, seed: opts.seed, augmenter: makeAugmenter(train, opts.seed), head: head ?? undefined });
  } else {
    model = await captureQuantizedModel(encoder, setting, { head: head ?? undefined });
  }
  for (const p of [paths.onnx, paths.weights]) if (p) mkdirSync(dirname(p), { recursive: true });
  saveExport(model, paths, {
    normalization: normalization(channels),
    metadata: { source_checkpoint: path, ...(calibration ? { calibration } : {}) },
  });
  return { setting: setting.name, onnx: paths.onnx ?? null, packed: paths.weights ?? null, head: headSource, calibration };
}
