// Node only: `ssql pretrain`, a training run that never loses work and never reports a result it
// does not have. Before the GPU starts: every option is validated, --out is locked and checked,
// the dataset is loaded and a checkpoint to resume is read, checked for non-finite values and
// compared with this run's options. Before training: the largest buffer the run needs is
// compared with the adapter's limit. While training: every loss read back and every checkpoint
// about to be written is checked for NaN/Inf (a diverged run stops, keeping the last good
// checkpoint); the checkpoint is written at each epoch end, every --checkpoint-every steps and
// every --checkpoint-minutes, and on SIGINT or SIGTERM before exiting with 128 + the signal.
import { constants } from 'node:os';
import { resolve } from 'node:path';
import { initNodeDevice, startNodeTuning } from '../../engine/device-node.ts';
import type { NodeTuning } from '../../engine/device-node.ts';
import { engine } from '../../engine/index.ts';
import type { Engine } from '../../engine/index.ts';
import { UsageError, formatHelp, parseArgs } from '../cli-args.ts';
import { Trainer, largestTensors } from '../train.ts';
import type { TrainConfig } from '../train.ts';
import { loadDataset } from '../data/datasets-node.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { loadSafetensors } from '../checkpoint/files-node.ts';
import { findNonFinite } from '../checkpoint/finite.ts';
import { RunDirectory } from '../checkpoint/run-dir-node.ts';
import type { SafeTensor } from '../checkpoint/safetensors.ts';
import { formatInitReport, initFromCheckpoint } from '../checkpoint/load.ts';
import { openCheckpoint } from '../cli-common-node.ts';
import { readConfig, readDatasetShape, readPosition, readRngStates, resumeDifferences, shapeText } from '../checkpoint/state.ts';
import type { DatasetShape } from '../checkpoint/state.ts';
import { Progress } from '../progress-node.ts';
import { RUN_OPTIONS, TRAIN_OPTIONS, pretrainOptionsFromArgs, trainConfigFromArgs } from './train-options.ts';

export interface PretrainOptions {
  /** true: continue OUT's checkpoint (one must exist); 'if-present': continue it when there is
   * one, else start afresh; false (default): start afresh. */
  resume?: boolean | 'if-present';
  /** Start from this checkpoint's backbone (and heads of matching shape) when not resuming. */
  init?: string;
  /** Start afresh even though OUT holds a checkpoint, replacing it. */
  force?: boolean;
  /** Read the loss back (and check it) every N steps (default 20). */
  logEvery?: number;
  /** Stop after this many steps in this run (default: no limit). */
  maxSteps?: number;
  /** Also write the checkpoint every N global steps (default 0: off). */
  checkpointEvery?: number;
  /** Also write it when this many minutes passed since the last one (default 10; 0: off). */
  checkpointMinutes?: number;
  /** No progress bar (warnings still go to stderr). */
  quiet?: boolean;
  /** Kernel tuning (engine/tuning-node.ts): new shapes are measured after the step that met them. */
  tuning?: NodeTuning;
}

export const DEFAULT_CHECKPOINT_MINUTES = 10;

export interface PretrainSummary {
  config: TrainConfig;
  /** Steps taken by this run, and in all (the checkpoint's position). */
  steps: number;
  global_step: number;
  epochs_done: number;
  final_loss: number | null;
  images_per_s: number;
  wall_s: number;
  checkpoint: string;
  /** The global step this run resumed from (null: it started afresh). */
  resumed_from: number | null;
  interrupted: boolean;
  /** The signal that stopped it, if one did. */
  signal: 'SIGINT' | 'SIGTERM' | null;
}

/** A loss or a tensor became NaN or infinite: the run stopped without saving the bad state. */
export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDiverged';
  }
}

/** The exit status after a stop by `signal`: 128 + its number (130 for SIGINT, 143 for SIGTERM). */
export function signalExitStatus(signal: 'SIGINT' | 'SIGTERM'): number {
  return 128 + constants.signals[signal];
}

/** `--data` as stored in the checkpoint: directories absolute, so a resume from elsewhere matches. */
export function canonicalDataSpec(spec: string): string {
  const colon = spec.indexOf(':');
  return colon < 0 ? spec : `${spec.slice(0, colon)}:${resolve(spec.slice(colon + 1))}`;
}

interface Checkpoint {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/** A run checked and loaded up to the point where it needs the GPU; holds OUT's lock. */
export interface PreparedPretrain {
  config: TrainConfig;
  data: LabeledImages;
  dir: RunDirectory;
  resumeFrom: Checkpoint | null;
  opts: PretrainOptions;
}

function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** Everything that can be checked without the GPU. UsageError for options and --out, a
 * FormatError for a dataset or checkpoint that cannot be used; OUT stays locked on success. */
export function preparePretrain(config: TrainConfig, dataSpec: string, out: string, opts: PretrainOptions = {}): PreparedPretrain {
  const withData: TrainConfig = { ...config, data: canonicalDataSpec(dataSpec) };
  const data = loadDataset(dataSpec, 'train');
  if (withData.subset > data.count) throw new UsageError(`--subset ${withData.subset} exceeds the ${data.count} training images of --data ${dataSpec}`);
  const count = withData.subset || data.count;
  if (withData.batchSize > count) {
    throw new UsageError(`--batch ${withData.batchSize} exceeds the ${count} training images (${withData.subset ? `--subset ${withData.subset}` : `--data ${dataSpec}`}): an epoch would have no step`);
  }
  const dir = RunDirectory.open(out, { resume: opts.resume ?? false, force: opts.force ?? false, warn });
  try {
    let resumeFrom: Checkpoint | null = null;
    if (dir.resuming) {
      resumeFrom = loadSafetensors(dir.checkpoint); // refuses non-finite values, naming the tensor
      checkResumable(resumeFrom, dir.checkpoint, withData, data);
    }
    return { config: withData, data, dir, resumeFrom, opts };
  } catch (e) {
    dir.release();
    throw e;
  }
}

function checkResumable(ckpt: Checkpoint, file: string, config: TrainConfig, data: DatasetShape): void {
  const saved = readConfig(ckpt.metadata, file);
  const { refusals, notes } = resumeDifferences(saved, config);
  const shape = readDatasetShape(ckpt.metadata, file);
  if (shape && shapeText(shape) !== shapeText(data)) {
    refusals.push(`--data: the checkpoint was trained on ${shapeText(shape)} images, --data ${config.data} has ${shapeText(data)} images`);
  }
  if (refusals.length > 0) {
    throw new UsageError(`--resume from ${file}: ${refusals.join('; ')}. Pass the options it was made with, or --force to start over`);
  }
  // Read now so a damaged checkpoint fails before the GPU starts.
  readPosition(ckpt.metadata, file);
  readRngStates(ckpt.metadata, file);
  for (const n of notes) warn(`resuming with ${n}`);
}

/** Refuse (naming the flags) a run whose largest tensor exceeds what one buffer may hold. */
export function checkDeviceLimits(config: TrainConfig, shape: DatasetShape, e: Engine): void {
  const { maxStorageBufferBindingSize, maxBufferSize } = e.device.limits;
  const limit = Math.min(maxStorageBufferBindingSize, maxBufferSize);
  const [largest] = largestTensors(config, shape);
  if (largest.bytes > limit) {
    throw new UsageError(
      `${largest.flags} too large for this adapter: the ${largest.what} (f32) needs ${largest.bytes} bytes, ` +
      `more than its largest storage buffer (maxStorageBufferBindingSize ${maxStorageBufferBindingSize}, maxBufferSize ${maxBufferSize} bytes); lower ${largest.flags}`,
    );
  }
}

function diverged(step: number, total: number, what: string, lastGood: number | null, dir: RunDirectory, config: TrainConfig): TrainingDivergedError {
  const kept = lastGood !== null ? `the last good checkpoint (step ${lastGood}) is kept in ${dir.checkpoint}` : 'no checkpoint was written';
  return new TrainingDivergedError(
    `training diverged at step ${step} of ${total}: ${what}; nothing from it was saved, ${kept}. ` +
    `Lower --lr (this run: ${config.lr}) or --weight-decay (${config.weightDecay}), then --resume or start over with --force`,
  );
}

/** Train a prepared run on engine `e` to its end, its --max-steps, a signal or divergence. */
export async function runPretrain(prep: PreparedPretrain, e: Engine): Promise<{ trainer: Trainer; summary: PretrainSummary }> {
  const { config, data, dir } = prep;
  checkDeviceLimits(config, data, e);
  const trainer = new Trainer(config, data);
  try {
    let resumedFrom: number | null = null;
    if (prep.resumeFrom) {
      trainer.restore(prep.resumeFrom.tensors, prep.resumeFrom.metadata, dir.checkpoint);
      resumedFrom = trainer.globalStep;
      dir.trimLog(resumedFrom);
      if (trainer.done) warn(`${dir.checkpoint} has finished all ${config.epochs} epochs: nothing to train (a larger --epochs trains on)`);
    } else {
      dir.startFresh();
      if (prep.opts.init) {
        const report = initFromCheckpoint(trainer.net, openCheckpoint(prep.opts.init, prep.opts.quiet ?? false));
        if (!prep.opts.quiet) process.stderr.write(`${formatInitReport(report, prep.opts.init)}\n`);
      }
    }
    return { trainer, summary: await train(trainer, dir, prep.opts, resumedFrom) };
  } catch (err) {
    trainer.dispose();
    throw err;
  }
}

async function train(trainer: Trainer, dir: RunDirectory, opts: PretrainOptions, resumedFrom: number | null): Promise<PretrainSummary> {
  const config = trainer.config;
  const logEvery = opts.logEvery ?? 20;
  const every = opts.checkpointEvery ?? 0;
  const minutes = opts.checkpointMinutes ?? DEFAULT_CHECKPOINT_MINUTES;
  const total = config.epochs * trainer.stepsPerEpoch;
  const progress = new Progress(opts.quiet ?? false);
  let signal: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (s: 'SIGINT' | 'SIGTERM') => {
    if (signal) {
      process.stderr.write(`\n${s} again: exiting now; the last checkpoint is kept\n`);
      process.exit(signalExitStatus(s));
    }
    signal = s;
    process.stderr.write(`\n${s}: stopping after this step and writing a checkpoint (${s === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM'} again exits at once)\n`);
  };
  // The last good checkpoint on disk: its step and when it was written.
  const saved = { step: resumedFrom, at: performance.now() };
  const save = async () => {
    const { tensors, metadata } = await trainer.checkpoint();
    const bad = findNonFinite(tensors);
    if (bad.length > 0) {
      const [b] = bad;
      const more = bad.length > 1 ? ` (and ${bad.length - 1} more tensors)` : '';
      throw diverged(trainer.globalStep, total, `tensor '${b.name}' holds ${b.count} non-finite values, the first ${b.value} at index ${b.index}${more}`, saved.step, dir, config);
    }
    dir.saveCheckpoint(tensors, metadata);
    saved.step = trainer.globalStep;
    saved.at = performance.now();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const t0 = performance.now();
  const startStep = trainer.globalStep;
  let lastLoss: number | null = null;
  try {
    while (!trainer.done && !signal && !(opts.maxSteps && trainer.globalStep - startStep >= opts.maxSteps)) {
      const r = trainer.step();
      const stepsHere = trainer.globalStep - startStep;
      try {
        if (stepsHere % logEvery === 0 || trainer.done) {
          const [loss, fp, quant] = [await r.loss.item(), await r.fp.item(), r.quant ? await r.quant.item() : null];
          const elapsed = (performance.now() - t0) / 1000;
          const ips = (stepsHere * config.batchSize) / elapsed;
          dir.appendLog({ epoch: r.epoch, step: r.step, lr: r.lr, loss, loss_fp: fp, loss_quant: quant, wbit: r.bits?.wbit ?? null, abit: r.bits?.abit ?? null, images_per_s: ips, elapsed_s: elapsed });
          const bad = ([['loss', loss], ['loss_fp', fp], ['loss_quant', quant]] as const).find(([, v]) => v !== null && !Number.isFinite(v));
          if (bad) throw diverged(trainer.globalStep, total, `the ${bad[0] === 'loss' ? 'loss' : `loss term ${bad[0]}`} is ${bad[1]}`, saved.step, dir, config);
          lastLoss = loss;
          progress.update({ epoch: r.epoch + 1, epochs: config.epochs, step: trainer.globalStep, total, loss, ips, eta: ((total - trainer.globalStep) * config.batchSize) / ips });
        } else {
          progress.tick(trainer.globalStep, total);
        }
      } finally {
        for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
      }
      if (opts.tuning) await opts.tuning.measure();
      const epochEnded = trainer.stepInEpoch === 0;
      const due = epochEnded || (every > 0 && trainer.globalStep % every === 0) || (minutes > 0 && performance.now() - saved.at >= minutes * 60_000);
      if (due) await save();
    }
    if (saved.step !== trainer.globalStep) await save();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    progress.done();
  }
  const wall = (performance.now() - t0) / 1000;
  const steps = trainer.globalStep - startStep;
  return {
    config, steps, global_step: trainer.globalStep, epochs_done: trainer.epoch, final_loss: lastLoss,
    images_per_s: steps > 0 ? (steps * config.batchSize) / wall : 0, wall_s: wall, checkpoint: dir.checkpoint,
    resumed_from: resumedFrom, interrupted: signal !== null, signal,
  };
}

/** Pretrain into `out` on the current engine (what `compare` runs); OUT is locked meanwhile. */
export async function pretrain(config: TrainConfig, dataSpec: string, out: string, opts: PretrainOptions = {}): Promise<{ trainer: Trainer; summary: PretrainSummary }> {
  const prep = preparePretrain(config, dataSpec, out, opts);
  try {
    return await runPretrain(prep, engine());
  } finally {
    prep.dir.release();
  }
}

/** `ssql pretrain ARGS`: the exit status (0 done, 128 + signal when stopped by one). */
export async function pretrainCommand(argv: string[], summaryLine: string): Promise<number> {
  const { json, help, ...training } = TRAIN_OPTIONS;
  const spec = { ...training, ...RUN_OPTIONS, json, help };
  const a = parseArgs(argv, spec);
  if (a.help) {
    process.stdout.write(formatHelp('usage: ssql pretrain [options]', summaryLine, spec) +
      '\nStops on SIGINT (Ctrl-C) or SIGTERM after the current step, writes the checkpoint, and exits with\n' +
      '130 (SIGINT) or 143 (SIGTERM); --resume continues exactly. A diverged run (NaN/Inf) exits 1 and\n' +
      'keeps the last good checkpoint.\n');
    return 0;
  }
  const config = trainConfigFromArgs(a);
  const opts = pretrainOptionsFromArgs(a);
  const prep = preparePretrain(config, a.data as string, a.out as string, opts);
  let summary: PretrainSummary;
  try {
    const e = await initNodeDevice();
    prep.opts.tuning = startNodeTuning();
    try {
      const r = await runPretrain(prep, e);
      r.trainer.dispose();
      summary = r.summary;
    } finally {
      prep.opts.tuning.save();
      e.destroy();
    }
  } finally {
    prep.dir.release();
  }
  if (a.json) process.stdout.write(JSON.stringify(summary) + '\n');
  else {
    const how = summary.signal ? `interrupted (${summary.signal})` : summary.epochs_done >= config.epochs ? 'done' : 'stopped (--max-steps)';
    process.stdout.write(`${how}: ${summary.steps} steps (${summary.global_step} in all), ${summary.images_per_s.toFixed(1)} images/s, final loss ${summary.final_loss?.toFixed(4) ?? '-'}; checkpoint ${summary.checkpoint}${summary.signal ? ' (--resume continues)' : ''}\n`);
  }
  return summary.signal ? signalExitStatus(summary.signal) : 0;
}
