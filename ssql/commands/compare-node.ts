// `ssql compare` (Node only): for each seed, pretrain SimSiam and SSQL with the same budget and
// initialization, evaluate both and the untrained backbone (same architecture and init, no
// training step) with the same PTQ protocol at every bit setting, and write OUT/report.md,
// OUT/accuracy.svg and OUT/report.json (ssql/report.ts: mean +- sd over seeds, paired
// differences with 95% intervals).
//
// It resumes. Everything lands under OUT as it is made:
//   OUT/compare.json                      the pretraining budget and data (a rerun must match)
//   OUT/seed-S/METHOD/checkpoint.safetensors, train.jsonl    pretrain's (periodic, resumable)
//   OUT/seed-S/METHOD/pretrain.json       the finished pretraining's summary
//   OUT/seed-S/MODEL/eval.json            results per setting, written after each setting
// and running the same command again skips what is done: a finished pretraining is loaded, an
// unfinished one resumed, an evaluated setting kept (when the evaluation options match; else
// evaluated anew). More seeds can be added to a finished run. The report is rewritten after
// every seed; a stop by SIGINT or SIGTERM during pretraining exits 128 + the signal, as
// pretrain does.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../../engine/index.ts';
import { UsageError, formatHelp, integerOption, parseArgs } from '../cli-args.ts';
import type { OptionSpec, ParsedArgs } from '../cli-args.ts';
import { initNodeDevice, startNodeTuning } from '../../engine/device-node.ts';
import type { NodeTuning } from '../../engine/device-node.ts';
import { TRAIN_OPTIONS, trainConfigFromArgs } from './train-options.ts';
import { methodSettingFlags, methodSettingOptions } from './method-settings.ts';
import { canonicalDataSpec, pretrain, signalExitStatus } from './pretrain-node.ts';
import { resumeDifferences, readConfig } from '../checkpoint/state.ts';
import { loadSafetensors, writeFileAtomic } from '../checkpoint/files-node.ts';
import { loadDataset } from '../data/datasets-node.ts';
import type { LabeledImages } from '../data/cifar.ts';
import { UNTRAINED, buildReport, reportMarkdown, reportSvg } from '../report.ts';
import type { CompareReport, PretrainStats, SeedRun } from '../report.ts';
import { Trainer } from '../train.ts';
import type { TrainConfig } from '../train.ts';
import type { ResNet } from '../models/resnet.ts';
import { EVAL_OPTIONS, evalSpecFromArgs, evaluateEncoder, loadEvalData } from './evaluate-node.ts';
import type { EvalData, EvalSpec } from './evaluate-node.ts';

/** The compared methods: the report's difference is the second minus the first. */
export const COMPARED = ['simsiam', 'ssql'] as const;

/** compare's options: pretrain's budget (not the method, seed, resume or step limit), the
 * evaluation's (kNN is always reported: it reuses the probe's features), and the seeds. */
export function compareOptions(): Record<string, OptionSpec> {
  const spec: Record<string, OptionSpec> = {
    ...TRAIN_OPTIONS, ...EVAL_OPTIONS,
    seeds: { type: 'string', default: '0', help: 'seeds, comma-separated (e.g. 0,1,2): one pretraining per method and seed' },
    out: { type: 'string', default: 'runs/compare', help: 'output directory (report.md, accuracy.svg, report.json, one folder per seed); rerun the same command to continue an interrupted run' },
  };
  for (const name of ['method', 'seed', 'resume', 'max-steps', 'knn']) delete spec[name];
  // The methods' own settings only where a compared method reads them.
  const read = new Set(methodSettingFlags(COMPARED));
  for (const flag of Object.keys(methodSettingOptions())) if (!read.has(flag)) delete spec[flag];
  return spec;
}

/** A compare run, validated. */
export interface ComparePlan {
  /** The pretraining budget (method and seed are set per run). */
  base: TrainConfig;
  seeds: number[];
  data: string;
  eval: EvalSpec;
  out: string;
  logEvery: number;
  quiet: boolean;
  command?: string;
  /** Kernel tuning for the pretrainings (feature extraction measures through the engine). */
  tuning?: NodeTuning;
}

function parseSeeds(text: string): number[] {
  const seeds = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > 2 ** 31 - 1)) {
    throw new UsageError(`--seeds must be non-negative integers separated by commas (e.g. 0,1,2), got '${text}'`);
  }
  if (new Set(seeds).size !== seeds.length) throw new UsageError(`--seeds lists a seed twice: '${text}'`);
  return seeds;
}

/** Every option checked before any work (usage errors name the flag). */
export function comparePlanFromArgs(a: ParsedArgs, command?: string): ComparePlan {
  const seeds = parseSeeds(a.seeds as string);
  const evalSpec = { ...evalSpecFromArgs(a), knn: true };
  const base = trainConfigFromArgs({ ...a, method: COMPARED[0], seed: seeds[0] });
  const logEvery = integerOption(a, 'log-every', 1);
  return { base, seeds, data: a.data as string, eval: evalSpec, out: a.out as string, logEvery, quiet: Boolean(a.json), command };
}

/** The command: `summary` is cli.ts's line for it (its --help repeats it). */
export async function runCompare(argv: string[], summary: string): Promise<number> {
  const spec = compareOptions();
  const a = parseArgs(argv, spec);
  if (a.help) {
    process.stdout.write(formatHelp('usage: ssql compare [options]', summary, spec));
    return 0;
  }
  const plan = comparePlanFromArgs(a, `ssql compare ${argv.join(' ')}`.trim());
  const e = await initNodeDevice();
  const tuning = startNodeTuning();
  try {
    const report = await compare({ ...plan, tuning }, e);
    if (a.json) process.stdout.write(JSON.stringify(report) + '\n');
  } catch (err) {
    if (err instanceof CompareInterrupted) {
      process.stderr.write(`${err.message}\n`);
      return signalExitStatus(err.signal);
    }
    throw err;
  } finally {
    tuning.save();
    e.destroy();
  }
  return 0;
}

/** A pretraining stopped by SIGINT or SIGTERM (its checkpoint written): compare stops too. */
export class CompareInterrupted extends Error {
  constructor(readonly signal: 'SIGINT' | 'SIGTERM', out: string) {
    super(`compare stopped by ${signal}; everything done so far is kept in ${out}: run the same command again to continue`);
    this.name = 'CompareInterrupted';
  }
}

// ---- what a run keeps under OUT ---------------------------------------------------------------

/** The budget a rerun must match (everything of the pretraining but method and seed). */
function budgetOf(plan: ComparePlan): Record<string, unknown> {
  const { method: _method, seed: _seed, ...budget } = plan.base;
  return { data: plan.data, ...budget };
}

function checkBudget(plan: ComparePlan): void {
  const path = join(plan.out, 'compare.json');
  const budget = budgetOf(plan);
  if (existsSync(path)) {
    const saved = (JSON.parse(readFileSync(path, 'utf8')) as { budget: Record<string, unknown> }).budget;
    for (const key of new Set([...Object.keys(saved), ...Object.keys(budget)])) {
      if (JSON.stringify(saved[key]) !== JSON.stringify(budget[key])) {
        throw new UsageError(`${plan.out} holds a compare run with ${key}=${JSON.stringify(saved[key])}, this run has ${JSON.stringify(budget[key])}: use the same options to continue it, or another --out`);
      }
    }
    return;
  }
  mkdirSync(plan.out, { recursive: true });
  writeFileAtomic(path, JSON.stringify({ format: 'ssql-compare-1', budget }, null, 2) + '\n');
}

/** What makes evaluation results comparable: kept results must have been made with these. */
function evalKey(plan: ComparePlan, data: EvalData): Record<string, unknown> {
  const { protocol, epochs, lr, schedule, knn } = plan.eval;
  return { data: plan.data, protocol, epochs, lr, schedule, knn, train_images: data.train.count, test_images: data.test.count };
}

interface EvalFile {
  key: Record<string, unknown>;
  linear: Record<string, number>;
  knn: Record<string, number>;
}

/** The kept results of one model, or empty ones when none match `key`. */
function readEvalFile(path: string, key: Record<string, unknown>, say: (s: string) => void): EvalFile {
  const empty: EvalFile = { key, linear: {}, knn: {} };
  if (!existsSync(path)) return empty;
  const kept = JSON.parse(readFileSync(path, 'utf8')) as EvalFile;
  if (JSON.stringify(kept.key) !== JSON.stringify(key)) {
    say(`${path}: made with other evaluation options (${JSON.stringify(kept.key)}); evaluating anew`);
    return empty;
  }
  return kept;
}

// ---- the run -----------------------------------------------------------------------------------

/** Progress lines on stderr (quiet: none). */
function sayer(quiet: boolean): (s: string) => void {
  return (s) => {
    if (!quiet) process.stderr.write(`${s}\n`);
  };
}

/** Evaluate `model` (whose encoder `getEncoder` provides) at the settings it lacks, keeping each
 * setting's result in `path` as soon as it is known. */
async function evaluateModel(plan: ComparePlan, data: EvalData, seed: number, model: string, path: string, getEncoder: () => Promise<{ encoder: ResNet; release: () => void }>, say: (s: string) => void): Promise<EvalFile> {
  const file = readEvalFile(path, evalKey(plan, data), say);
  const missing = plan.eval.settings.filter((s) => file.linear[s] === undefined || (plan.eval.knn && file.knn[s] === undefined));
  const kept = plan.eval.settings.length - missing.length;
  if (kept > 0) say(`seed ${seed} ${model}: ${kept} setting${kept > 1 ? 's' : ''} kept from an earlier run`);
  if (missing.length === 0) return file;
  const { encoder, release } = await getEncoder();
  try {
    say(`== seed ${seed} ${model}: evaluation ==`);
    await evaluateEncoder(encoder, data, plan.eval, seed, `seed ${seed} ${model}`, {
      quiet: plan.quiet, settings: missing,
      onSetting: (s, top1, knn) => {
        file.linear[s] = top1;
        if (knn !== undefined) file.knn[s] = knn;
        writeFileAtomic(path, JSON.stringify(file, null, 2) + '\n');
      },
    });
  } finally {
    release();
  }
  return file;
}

/** The network every method starts from at `seed`, never trained (a Trainer that takes no step:
 * the same code path builds the pretrained runs' initialization). */
export function untrainedTrainer(base: TrainConfig, seed: number, train: LabeledImages): Trainer {
  const trainer = new Trainer({ ...base, method: COMPARED[0], seed }, train);
  if (trainer.globalStep !== 0) throw new Error('the untrained baseline took a training step');
  return trainer;
}

function finishedCheckpoint(path: string, config: TrainConfig): { tensors: ReturnType<typeof loadSafetensors>['tensors']; metadata: Record<string, string> } | null {
  if (!existsSync(path)) return null;
  const ckpt = loadSafetensors(path);
  return Number(ckpt.metadata.epoch) >= config.epochs ? ckpt : null;
}

/** Pretrain `method` at `seed` (resuming an unfinished checkpoint, loading a finished one);
 * returns the trained network's holder and, when it pretrained now, the summary. */
async function pretrained(plan: ComparePlan, method: string, seed: number, train: LabeledImages, say: (s: string) => void): Promise<{ trainer: Trainer; stats: PretrainStats | null }> {
  const dir = join(plan.out, `seed-${seed}`, method);
  const config: TrainConfig = { ...plan.base, method: method as TrainConfig['method'], seed };
  const ckptPath = join(dir, 'checkpoint.safetensors');
  const done = finishedCheckpoint(ckptPath, config);
  if (done) {
    say(`seed ${seed} ${method}: pretraining finished in an earlier run (${ckptPath})`);
    const trainer = new Trainer({ ...config, data: canonicalDataSpec(plan.data) }, train);
    try {
      for (const note of resumeDifferences(readConfig(done.metadata, ckptPath), trainer.config).notes) say(`${ckptPath}: ${note}`);
      trainer.restore(done.tensors, done.metadata, ckptPath);
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    return { trainer, stats: null };
  }
  say(`== seed ${seed} ${method}: pretraining${existsSync(ckptPath) ? ' (resuming)' : ''} ==`);
  const { trainer, summary } = await pretrain(config, plan.data, dir, { resume: 'if-present', logEvery: plan.logEvery, quiet: plan.quiet, tuning: plan.tuning });
  if (summary.signal) {
    trainer.dispose();
    throw new CompareInterrupted(summary.signal, plan.out);
  }
  const stats: PretrainStats = { images_per_s: summary.images_per_s, wall_s: summary.wall_s, final_loss: summary.final_loss };
  writeFileAtomic(join(dir, 'pretrain.json'), JSON.stringify(stats, null, 2) + '\n');
  return { trainer, stats };
}

/** Run (or continue) the comparison and write the report. */
export async function compare(plan: ComparePlan, e: Engine): Promise<CompareReport> {
  const t0 = performance.now();
  const say = sayer(plan.quiet);
  const fullTrain = loadDataset(plan.data, 'train');
  const data = loadEvalData(plan.data, plan.eval, fullTrain);
  checkBudget(plan);
  const runs: SeedRun[] = [];
  let report: CompareReport | null = null;
  for (const seed of plan.seeds) {
    const seedDir = join(plan.out, `seed-${seed}`);
    mkdirSync(seedDir, { recursive: true });
    const run: SeedRun = { seed, linear: {}, ...(plan.eval.knn ? { knn: {} } : {}), pretrain: {} };
    const keep = (model: string, f: EvalFile) => {
      run.linear[model] = Object.fromEntries(plan.eval.settings.map((s) => [s, f.linear[s]]));
      if (run.knn) run.knn[model] = Object.fromEntries(plan.eval.settings.map((s) => [s, f.knn[s]]));
    };
    const untrained = await evaluateModel(plan, data, seed, UNTRAINED, join(seedDir, UNTRAINED, 'eval.json'), async () => {
      mkdirSync(join(seedDir, UNTRAINED), { recursive: true });
      const trainer = untrainedTrainer(plan.base, seed, fullTrain);
      return { encoder: trainer.net.encoder, release: () => trainer.dispose() };
    }, say);
    keep(UNTRAINED, untrained);
    for (const method of COMPARED) {
      const evalPath = join(seedDir, method, 'eval.json');
      // The network is needed only for settings not yet evaluated.
      const results = await evaluateModel(plan, data, seed, method, evalPath, async () => {
        const p = await pretrained(plan, method, seed, fullTrain, say);
        return { encoder: p.trainer.net.encoder, release: () => p.trainer.dispose() };
      }, say);
      const statsPath = join(seedDir, method, 'pretrain.json');
      if (existsSync(statsPath)) run.pretrain[method] = JSON.parse(readFileSync(statsPath, 'utf8')) as PretrainStats;
      keep(method, results);
    }
    runs.push(run);
    report = writeReport(plan, e, runs, data.test.count, (performance.now() - t0) / 1000);
  }
  if (!plan.quiet) process.stdout.write(`\n${reportMarkdown(report!)}\nwrote ${join(plan.out, 'report.md')}, accuracy.svg, report.json\n`);
  return report!;
}

function writeReport(plan: ComparePlan, e: Engine, runs: SeedRun[], testImages: number, wall: number): CompareReport {
  const { seed: _seed, method: _method, ...budget } = plan.base;
  const ev = plan.eval;
  const report = buildReport({
    config: {
      ...budget, data: plan.data, seeds: plan.seeds, settings: ev.settings, protocol: ev.protocol, linear_epochs: ev.epochs, linear_lr: ev.lr,
      linear_schedule: ev.schedule, eval_train: ev.evalTrain, eval_test: ev.evalTest, knn: ev.knn,
    },
    adapter: e.adapter.description || e.adapter.vendor, wall_s: wall, command: plan.command,
    settings: ev.settings, methods: [...COMPARED], test_images: testImages, runs,
  });
  writeFileAtomic(join(plan.out, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(join(plan.out, 'report.md'), reportMarkdown(report));
  writeFileAtomic(join(plan.out, 'accuracy.svg'), reportSvg(report));
  return report;
}
