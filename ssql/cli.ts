// The `ssql` command line (Node only): pretrain, eval, compare, bench, info.
// Run as `npx ssql ...` or `npm run ssql -- ...`.
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../engine/index.ts';
import { UsageError, formatHelp, integerOption, parseArgs } from './cli-args.ts';
import type { OptionSpec, ParsedArgs } from './cli-args.ts';
import type { TrainConfig } from './train.ts';
import { loadDataset } from './data/datasets-node.ts';
import { loadSafetensors, writeFileAtomic } from './checkpoint/files-node.ts';
import { readConfig, readDatasetShape, shapeText } from './checkpoint/state.ts';
import { loadBackbone } from './checkpoint/load.ts';
import type { CheckpointContents } from './checkpoint/load.ts';
import { openCheckpoint, withDevice } from './cli-common-node.ts';
import { IMPORT_COMMAND } from './commands/import-node.ts';
import { EXPORT_COMMAND } from './commands/export-node.ts';
import { FINETUNE_COMMAND } from './commands/finetune-node.ts';
import { CheckpointFormatError } from './format-error.ts';
import { DEFAULT_SETTINGS, evaluate, parseSettings } from './eval/index.ts';
import type { EvalProtocol, EvalResult } from './eval/index.ts';
import type { ResNet } from './models/resnet.ts';
import { METHOD_NAMES } from './methods/registry.ts';
import { reportMarkdown, reportSvg } from './report.ts';
import type { CompareReport } from './report.ts';
import type { LabeledImages } from './data/cifar.ts';
import { TRAIN_OPTIONS, trainConfigFromArgs } from './commands/train-options.ts';
import { canonicalDataSpec, pretrain, pretrainCommand } from './commands/pretrain-node.ts';

const EVAL_OPTIONS: Record<string, OptionSpec> = {
  settings: { type: 'string', default: DEFAULT_SETTINGS.join(','), help: 'bit settings, comma-separated (fp, 8w8a, 4w4a, 2w4a, ...)' },
  protocol: { type: 'string', default: 'fast', choices: ['fast', 'faithful'], help: 'fast: cached un-augmented features; faithful: the reference recipe (augmented inputs every epoch)' },
  'linear-epochs': { type: 'number', default: 100, help: 'linear classifier epochs (lr x0.1 at 60% and 80%)' },
  'linear-lr': { type: 'number', default: 30, help: 'linear classifier learning rate' },
  knn: { type: 'boolean', help: 'also report kNN top-1 (k=200, cosine)' },
  'eval-train': { type: 'number', default: 0, help: 'training images for the classifier (0: all)' },
  'eval-test': { type: 'number', default: 0, help: 'test images (0: all)' },
};

/** Validate --settings before any work starts. */
function checkSettings(text: string): void {
  try {
    parseSettings(text);
  } catch (e) {
    throw new UsageError(`--settings: ${(e as Error).message}`);
  }
}

/** The first `n` images of a set (all when n is 0). */
function head(set: LabeledImages, n: number): LabeledImages {
  if (!n || n >= set.count) return set;
  const per = set.channels * set.height * set.width;
  return { ...set, images: set.images.subarray(0, n * per), labels: set.labels.subarray(0, n), count: n };
}

/** A checkpoint to evaluate (ssql-webgpu safetensors, or a PyTorch file imported in memory):
 * read, checked for non-finite values and against the evaluation data's image shape, all before
 * the GPU starts. `config` is null for an import (it records the architecture only). */
export interface EvalCheckpoint extends CheckpointContents {
  config: TrainConfig | null;
}

export function openEvalCheckpoint(file: string, dataSpec: string, quiet = false): EvalCheckpoint {
  const ck = openCheckpoint(file, quiet);
  const config = ck.imported ? null : readConfig(ck.metadata, file);
  const stem = ck.tensors['encoder.conv1.weight'];
  if (!stem || stem.shape.length !== 4) throw new CheckpointFormatError(`${file}: lacks a 4-d 'encoder.conv1.weight' (not a pretrained backbone)`, { file, field: 'encoder.conv1.weight' });
  const trained = ck.imported ? null : readDatasetShape(ck.metadata, file);
  const data = loadDataset(dataSpec, 'test');
  const channelsDiffer = stem.shape[1] !== data.channels;
  if (channelsDiffer || (trained && shapeText(trained) !== shapeText(data))) {
    const was = trained ? `${shapeText(trained)} images` : `${stem.shape[1]}-channel images`;
    throw new UsageError(`--data ${dataSpec} has ${shapeText(data)} images, but ${file} was trained on ${config?.data ?? 'a dataset'} (${was}): evaluate it on data of the shape it was trained on`);
  }
  if (config?.data && config.data !== canonicalDataSpec(dataSpec)) {
    process.stderr.write(`note: ${file} was trained on ${config.data}; evaluating on --data ${dataSpec}\n`);
  }
  return { ...ck, config };
}

async function evaluateEncoder(encoder: ResNet, dataSpec: string, a: ParsedArgs, seed: number, label: string, quiet: boolean): Promise<EvalResult> {
  const train = head(loadDataset(dataSpec, 'train'), a['eval-train'] as number);
  const test = head(loadDataset(dataSpec, 'test'), a['eval-test'] as number);
  const settings = parseSettings(a.settings as string).map((s) => s.name);
  return evaluate(encoder, train, test, {
    settings, protocol: a.protocol as EvalProtocol, epochs: a['linear-epochs'] as number, lr: a['linear-lr'] as number,
    knn: Boolean(a.knn), seed,
    onProgress: (p) => {
      if (quiet) return;
      const clear = process.stderr.isTTY ? '\r\x1b[K' : '';
      if (p.stage === 'done') process.stderr.write(`${clear}${label} ${p.setting}: linear top-1 ${p.top1?.toFixed(2)}%${p.knn !== undefined ? `, kNN ${p.knn.toFixed(2)}%` : ''}\n`);
      else if (process.stderr.isTTY) process.stderr.write(`\r${label} ${p.setting} (${p.index + 1}/${p.total}): ${p.stage}${p.epoch !== undefined ? ` epoch ${p.epoch}/${p.epochs}` : ''}\x1b[K`);
    },
  });
}

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  eval: {
    summary: 'PTQ linear evaluation of a pretrained checkpoint at several bit settings',
    run: async (argv) => {
      const spec: Record<string, OptionSpec> = {
        checkpoint: { type: 'string', help: 'checkpoint: .safetensors (pretrain, finetune, import) or a PyTorch .pth/.pth.tar (required)' },
        data: TRAIN_OPTIONS.data, ...EVAL_OPTIONS, seed: TRAIN_OPTIONS.seed,
        json: { type: 'boolean', help: 'print {"results": {...}} as JSON' }, help: TRAIN_OPTIONS.help,
      };
      const a = parseArgs(argv, spec);
      if (a.help) {
        process.stdout.write(formatHelp('usage: ssql eval --checkpoint PATH [options]', COMMANDS.eval.summary, spec));
        return 0;
      }
      if (!a.checkpoint) throw new UsageError('--checkpoint PATH is required');
      checkSettings(a.settings as string);
      const seed = integerOption(a, 'seed', 0, 0xffffffff);
      const ckpt = openEvalCheckpoint(a.checkpoint as string, a.data as string);
      await withDevice(async () => {
        const encoder = loadBackbone(ckpt);
        const r = await evaluateEncoder(encoder, a.data as string, a, seed, 'eval', Boolean(a.json));
        if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
        else for (const [s, v] of Object.entries(r.results)) process.stdout.write(`${s.padEnd(5)} ${v.toFixed(2)}%${r.knn ? `  kNN ${r.knn[s].toFixed(2)}%` : ''}\n`);
      });
      return 0;
    },
  },
  compare: {
    summary: 'pretrain SimSiam and SSQL with the same budget and seed, evaluate both, write a report',
    run: async (argv) => {
      const spec: Record<string, OptionSpec> = { ...TRAIN_OPTIONS, ...EVAL_OPTIONS, out: { type: 'string', default: 'runs/compare', help: 'output directory (report.md, accuracy.svg, report.json, checkpoints)' } };
      delete spec.method;
      delete spec.resume;
      delete spec['max-steps'];
      const a = parseArgs(argv, spec);
      if (a.help) {
        process.stdout.write(formatHelp('usage: ssql compare [options]', COMMANDS.compare.summary, spec));
        return 0;
      }
      checkSettings(a.settings as string);
      await withDevice(async (e) => {
        const report = await compare(a, `ssql compare ${argv.join(' ')}`.trim(), e);
        if (a.json) process.stdout.write(JSON.stringify(report) + '\n');
      });
      return 0;
    },
  },
  pretrain: {
    summary: `pretrain a backbone (${METHOD_NAMES.join(', ')}) and write a checkpoint`,
    run: (argv) => pretrainCommand(argv, COMMANDS.pretrain.summary),
  },
  info: {
    summary: 'print the WebGPU adapter, its limits and features',
    run: async (argv) => {
      const spec: Record<string, OptionSpec> = { json: { type: 'boolean', help: 'print JSON' }, help: { type: 'boolean', help: 'show this help' } };
      const a = parseArgs(argv, spec);
      if (a.help) {
        process.stdout.write(formatHelp('usage: ssql info [--json]', COMMANDS.info.summary, spec));
        return 0;
      }
      await withDevice(async (e) => {
        const r = e.adapter;
        if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
        else {
          process.stdout.write(`adapter: ${r.description} (vendor ${r.vendor}, ${r.architecture}${r.isFallbackAdapter ? ', fallback' : ''})\n`);
          process.stdout.write(`features: ${r.features.join(', ')}\n`);
          for (const [k, v] of Object.entries(r.limits)) process.stdout.write(`  ${k}: ${v}\n`);
        }
      });
      return 0;
    },
  },
};

/** Pretrain SimSiam then SSQL with the same budget and seed, evaluate both the same way, and
 * write OUT/report.md, OUT/accuracy.svg and OUT/report.json. */
export async function compare(a: ParsedArgs, command: string, e: Engine): Promise<CompareReport> {
  const t0 = performance.now();
  const out = a.out as string;
  mkdirSync(out, { recursive: true });
  const base = trainConfigFromArgs({ ...a, method: 'ssql' });
  const results: Record<string, Record<string, number>> = {};
  const knn: Record<string, Record<string, number>> = {};
  const pretrainStats: NonNullable<CompareReport['pretrain']> = {};
  for (const method of ['simsiam', 'ssql'] as const) {
    const config = { ...base, method };
    const quiet = Boolean(a.json);
    if (!quiet) process.stderr.write(`== ${method}: pretraining ==\n`);
    const { trainer, summary } = await pretrain(config, a.data as string, join(out, method), { logEvery: a['log-every'] as number, quiet, resume: 'if-present' });
    if (summary.interrupted) throw new Error('interrupted; checkpoints are in ' + out);
    pretrainStats[method] = { images_per_s: summary.images_per_s, wall_s: summary.wall_s, final_loss: summary.final_loss };
    if (!quiet) process.stderr.write(`== ${method}: evaluation ==\n`);
    const r = await evaluateEncoder(trainer.net.encoder, a.data as string, a, config.seed, method, quiet);
    results[method] = r.results;
    if (r.knn) knn[method] = r.knn;
    trainer.dispose();
  }
  // The shared budget and evaluation settings (the method differs per column).
  const evalConfig: Record<string, unknown> = { ...base, data: a.data, settings: a.settings, protocol: a.protocol, linear_epochs: a['linear-epochs'], linear_lr: a['linear-lr'], eval_train: a['eval-train'], eval_test: a['eval-test'] };
  delete evalConfig.method;
  const report: CompareReport = {
    config: evalConfig, adapter: e.adapter.description || e.adapter.vendor, wall_s: (performance.now() - t0) / 1000,
    results, ...(a.knn ? { knn } : {}), pretrain: pretrainStats,
  };
  writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  const md = reportMarkdown(report, command);
  writeFileAtomic(join(out, 'report.md'), md);
  writeFileAtomic(join(out, 'accuracy.svg'), reportSvg(report));
  if (!a.json) process.stdout.write(`\n${md}\nwrote ${join(out, 'report.md')}, accuracy.svg, report.json\n`);
  return report;
}

export function registerCommand(name: string, summary: string, run: (argv: string[]) => Promise<number>): void {
  COMMANDS[name] = { summary, run };
}

for (const c of [IMPORT_COMMAND, EXPORT_COMMAND, FINETUNE_COMMAND]) registerCommand(c.name, c.summary, c.run);

function mainHelp(): string {
  const names = Object.keys(COMMANDS);
  const w = Math.max(...names.map((n) => n.length));
  return `usage: ssql <command> [options]\n\nSSQL and SimSiam pretraining, PTQ evaluation and comparison on WebGPU.\n\nCommands:\n${names.map((n) => `  ${n.padEnd(w)}  ${COMMANDS[n].summary}`).join('\n')}\n\nRun 'ssql <command> --help' for its options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`ssql: unknown command '${name}'\n\n${mainHelp()}`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ssql ${name}: ${e.message}\nRun 'ssql ${name} --help' for the options.\n`);
      return 2;
    }
    const err = e as Error;
    process.stderr.write(`ssql ${name}: ${err.name === 'Error' ? '' : `${err.name}: `}${err.message}\n`);
    if (process.env.SSQL_DEBUG) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('ssql/cli.ts')) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
