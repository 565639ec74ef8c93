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
import { METHOD_NAMES } from './methods/registry.ts';
import { TRAIN_OPTIONS } from './commands/train-options.ts';
import { canonicalDataSpec, pretrainCommand } from './commands/pretrain-node.ts';
import { runCompare } from './commands/compare-node.ts';
import { EVAL_OPTIONS, evalSpecFromArgs, evaluateEncoder, loadEvalData } from './commands/evaluate-node.ts';

/** A checkpoint to evaluate (ssql-webgpu safetensors, or a PyTorch file imported in memory):
 * read, checked for non-finite values and against the evaluation data's image shape, all before
 * the GPU starts. `config` is null for an import. */
export interface EvalCheckpoint extends CheckpointContents {
  config: TrainConfig | null;
}

export function openEvalCheckpoint(file: string, dataSpec: string, quiet = false): EvalCheckpoint {
  const ck = openCheckpoint(file, quiet);
  // An import (a .pth read now, or one converted by `ssql import`) records its architecture, not a
  // full training config.
  const imported = ck.imported !== undefined || ck.metadata.architecture !== undefined;
  const config = imported ? null : readConfig(ck.metadata, file);
  const stem = ck.tensors['encoder.conv1.weight'];
  if (!stem || stem.shape.length !== 4) throw new CheckpointFormatError(`${file}: lacks a 4-d 'encoder.conv1.weight' (not a pretrained backbone)`, { file, field: 'encoder.conv1.weight' });
  const trained = imported ? null : readDatasetShape(ck.metadata, file);
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
      const evalSpec = evalSpecFromArgs(a);
      const seed = integerOption(a, 'seed', 0, 0xffffffff);
      const ckpt = openEvalCheckpoint(a.checkpoint as string, a.data as string);
      await withDevice(async () => {
        const encoder = loadBackbone(ckpt);
        const r = await evaluateEncoder(encoder, loadEvalData(a.data as string, evalSpec), evalSpec, seed, 'eval', { quiet: Boolean(a.json) });
        if (a.json) process.stdout.write(JSON.stringify(r) + '\n');
        else for (const [s, v] of Object.entries(r.results)) process.stdout.write(`${s.padEnd(5)} ${v.toFixed(2)}%${r.knn ? `  kNN ${r.knn[s].toFixed(2)}%` : ''}\n`);
      });
      return 0;
    },
  },
  compare: {
    summary: 'pretrain SimSiam and SSQL per seed with the same budget, evaluate both and the untrained backbone, write a report (resumable)',
    run: (argv) => runCompare(argv, COMMANDS.compare.summary),
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
