// The `ssql` command line (Node only): pretrain, eval, compare, bench, info.
// Run as `npx ssql ...` or `npm run ssql -- ...`.
import { mkdirSync, appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { initNodeDevice } from '../engine/device-node.ts';
import type { Engine } from '../engine/index.ts';
import { UsageError, formatHelp, parseArgs } from './cli-args.ts';
import type { OptionSpec, ParsedArgs } from './cli-args.ts';
import { DEFAULT_CONFIG, Trainer, backboneConfig, loadInto } from './train.ts';
import type { TrainConfig } from './train.ts';
import { loadDataset } from './data/datasets-node.ts';
import { loadSafetensors, saveSafetensors } from './checkpoint/files-node.ts';
import { SimSiamNet } from './models/resnet.ts';
import { METHODS, METHOD_NAMES } from './methods/registry.ts';
import { runCompare } from './commands/compare-node.ts';
import { EVAL_OPTIONS, evalSpecFromArgs, evaluateEncoder, loadEvalData } from './commands/evaluate-node.ts';
import { Progress } from './progress-node.ts';
import { WEIGHT_GRADS } from './models/quant.ts';
import type { WeightGrad } from './models/quant.ts';

export const TRAIN_OPTIONS: Record<string, OptionSpec> = {
  method: {
    type: 'string', default: DEFAULT_CONFIG.method, choices: METHOD_NAMES, help: 'pretraining method',
    choiceHelp: Object.fromEntries(METHODS.map((m) => [m.name, m.description])),
  },
  model: { type: 'string', default: DEFAULT_CONFIG.model, choices: ['tiny', 'small', 'resnet18', 'resnet34', 'resnet50'], help: 'backbone (small: 16/32/64/128, one block a stage; tiny: 4/8/16/32)' },
  data: { type: 'string', default: 'fashion-mnist', help: 'fashion-mnist | mnist:DIR (IDX files) | cifar10:DIR | cifar100:DIR' },
  epochs: { type: 'number', default: DEFAULT_CONFIG.epochs, help: 'training epochs' },
  batch: { type: 'number', default: DEFAULT_CONFIG.batchSize, help: 'batch size' },
  lr: { type: 'number', default: DEFAULT_CONFIG.lr, help: 'base learning rate (cosine decay per epoch)' },
  'weight-decay': { type: 'number', default: DEFAULT_CONFIG.weightDecay, help: 'SGD weight decay' },
  'proj-dim': { type: 'number', default: DEFAULT_CONFIG.projDim, help: 'projector width' },
  'pred-hidden': { type: 'number', default: DEFAULT_CONFIG.predHidden, help: 'predictor bottleneck width' },
  wbits: { type: 'string', default: DEFAULT_CONFIG.wbits.join('-'), help: 'SSQL weight bit range, e.g. 2-8' },
  abits: { type: 'string', default: DEFAULT_CONFIG.abits.join('-'), help: 'SSQL activation bit range, e.g. 4-8' },
  'weight-grad': {
    type: 'string', default: DEFAULT_CONFIG.weightGrad, choices: WEIGHT_GRADS, help: 'backward of the weight quantizers',
    choiceHelp: { reference: 'the reference code\'s: straight-through plus the gradient through the weight scale', ste: 'plain straight-through, the scale a constant' },
  },
  subset: { type: 'number', default: 0, help: 'train on the first N images only (0: all)' },
  seed: { type: 'number', default: 0, help: 'random seed (weights, augmentation, data order, bits)' },
  out: { type: 'string', default: 'runs/pretrain', help: 'output directory (checkpoint.safetensors, train.jsonl)' },
  resume: { type: 'boolean', help: 'continue from OUT/checkpoint.safetensors' },
  'log-every': { type: 'number', default: 20, help: 'read the loss back every N steps' },
  'max-steps': { type: 'number', default: 0, help: 'stop after N steps in this run (0: no limit)' },
  json: { type: 'boolean', help: 'print the final summary as JSON' },
  help: { type: 'boolean', help: 'show this help' },
};

function range(text: string, name: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(text) ?? /^(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--${name} must look like 2-8, got '${text}'`);
  const lo = Number(m[1]);
  const hi = Number(m[2] ?? m[1]);
  if (lo < 1 || hi > 16 || lo > hi) throw new UsageError(`--${name} must be within 1-16 with low <= high, got '${text}'`);
  return [lo, hi];
}

export function trainConfigFromArgs(a: ParsedArgs): TrainConfig {
  const positive = (name: string) => {
    const v = a[name] as number;
    if (!(v > 0) || !Number.isInteger(v)) throw new UsageError(`--${name} must be a positive integer, got ${v}`);
    return v;
  };
  return {
    method: a.method as TrainConfig['method'], model: a.model as TrainConfig['model'],
    projDim: positive('proj-dim'), predHidden: positive('pred-hidden'), batchSize: positive('batch'), epochs: positive('epochs'),
    lr: a.lr as number, momentum: 0.9, weightDecay: a['weight-decay'] as number, seed: a.seed as number,
    wbits: range(a.wbits as string, 'wbits'), abits: range(a.abits as string, 'abits'), subset: a.subset as number,
    weightGrad: a['weight-grad'] as WeightGrad,
  };
}

export interface PretrainSummary {
  config: TrainConfig;
  steps: number;
  epochs_done: number;
  final_loss: number | null;
  images_per_s: number;
  wall_s: number;
  checkpoint: string;
  interrupted: boolean;
}

/** Pretrain and checkpoint; Ctrl-C stops after the current step and writes the checkpoint. */
export async function pretrain(config: TrainConfig, dataSpec: string, out: string, opts: { resume?: boolean; logEvery?: number; maxSteps?: number; quiet?: boolean } = {}): Promise<{ trainer: Trainer; summary: PretrainSummary }> {
  const data = loadDataset(dataSpec, 'train');
  mkdirSync(out, { recursive: true });
  const ckpt = join(out, 'checkpoint.safetensors');
  const logPath = join(out, 'train.jsonl');
  const trainer = new Trainer(config, data);
  if (opts.resume) {
    if (!existsSync(ckpt)) throw new UsageError(`--resume: no checkpoint at ${ckpt}`);
    const { tensors, metadata } = loadSafetensors(ckpt);
    for (const notice of trainer.restore(tensors, metadata)) process.stderr.write(`${ckpt}: ${notice}\n`);
  }
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write('\nstopping after this step and writing a checkpoint (Ctrl-C again to abort)\n');
  };
  process.on('SIGINT', onSigint);
  const total = config.epochs * trainer.stepsPerEpoch;
  const progress = new Progress(opts.quiet ?? false);
  const t0 = performance.now();
  const startStep = trainer.globalStep;
  let lastLoss: number | null = null;
  const logEvery = opts.logEvery ?? 20;
  try {
    while (!trainer.done && !stop && !(opts.maxSteps && trainer.globalStep - startStep >= opts.maxSteps)) {
      const r = trainer.step();
      const stepsHere = trainer.globalStep - startStep;
      if (stepsHere % logEvery === 0 || trainer.done) {
        const [loss, fp, quant] = [await r.loss.item(), await r.fp.item(), r.quant ? await r.quant.item() : null];
        lastLoss = loss;
        const elapsed = (performance.now() - t0) / 1000;
        const ips = (stepsHere * config.batchSize) / elapsed;
        const record = { epoch: r.epoch, step: r.step, lr: r.lr, loss, loss_fp: fp, loss_quant: quant, wbit: r.bits?.wbit ?? null, abit: r.bits?.abit ?? null, images_per_s: ips, elapsed_s: elapsed };
        appendFileSync(logPath, JSON.stringify(record) + '\n');
        progress.update({ epoch: r.epoch + 1, epochs: config.epochs, step: trainer.globalStep, total, loss, ips, eta: ((total - trainer.globalStep) * config.batchSize) / ips });
      } else {
        progress.tick(trainer.globalStep, total);
      }
      for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
    }
  } finally {
    process.off('SIGINT', onSigint);
    progress.done();
  }
  const { tensors, metadata } = await trainer.checkpoint();
  saveSafetensors(ckpt, tensors, metadata);
  const wall = (performance.now() - t0) / 1000;
  const steps = trainer.globalStep - startStep;
  return {
    trainer,
    summary: {
      config, steps, epochs_done: trainer.epoch, final_loss: lastLoss, images_per_s: steps > 0 ? (steps * config.batchSize) / wall : 0,
      wall_s: wall, checkpoint: ckpt, interrupted: stop,
    },
  };
}

/** Rebuild the network a checkpoint was trained with and load its weights. */
export function loadNet(path: string): { net: SimSiamNet; config: TrainConfig } {
  if (!existsSync(path)) throw new UsageError(`checkpoint not found: ${path}`);
  const { tensors, metadata } = loadSafetensors(path);
  if (!metadata.config) throw new Error(`${path}: not an ssql-webgpu checkpoint (no config in its metadata)`);
  const config = JSON.parse(metadata.config) as TrainConfig;
  const stem = tensors['encoder.conv1.weight'];
  if (!stem) throw new Error(`${path}: lacks encoder.conv1.weight`);
  const net = new SimSiamNet({ backbone: backboneConfig(config.model, stem.shape[1]), projDim: config.projDim, predHidden: config.predHidden }, Math.random);
  loadInto(net, tensors, path);
  return { net, config };
}

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  eval: {
    summary: 'PTQ linear evaluation of a pretrained checkpoint at several bit settings',
    run: async (argv) => {
      const spec: Record<string, OptionSpec> = {
        checkpoint: { type: 'string', help: 'checkpoint.safetensors written by pretrain (required)' },
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
      await withDevice(async () => {
        const { net } = loadNet(a.checkpoint as string);
        const r = await evaluateEncoder(net.encoder, loadEvalData(a.data as string, evalSpec), evalSpec, a.seed as number, 'eval', { quiet: Boolean(a.json) });
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
    run: async (argv) => {
      const a = parseArgs(argv, TRAIN_OPTIONS);
      if (a.help) {
        process.stdout.write(formatHelp('usage: ssql pretrain [options]', COMMANDS.pretrain.summary, TRAIN_OPTIONS));
        return 0;
      }
      const config = trainConfigFromArgs(a);
      await withDevice(async () => {
        const { trainer, summary } = await pretrain(config, a.data as string, a.out as string, {
          resume: Boolean(a.resume), logEvery: a['log-every'] as number, maxSteps: a['max-steps'] as number, quiet: Boolean(a.json),
        });
        trainer.dispose();
        if (a.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else process.stdout.write(`${summary.interrupted ? 'interrupted' : 'done'}: ${summary.steps} steps, ${summary.images_per_s.toFixed(1)} images/s, final loss ${summary.final_loss?.toFixed(4) ?? '-'}; checkpoint ${summary.checkpoint}\n`);
      });
      return 0;
    },
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

export async function withDevice(fn: (e: Engine) => Promise<void>): Promise<void> {
  const e = await initNodeDevice();
  try {
    await fn(e);
  } finally {
    e.destroy();
  }
}

export function registerCommand(name: string, summary: string, run: (argv: string[]) => Promise<number>): void {
  COMMANDS[name] = { summary, run };
}

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
