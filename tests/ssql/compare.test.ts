// `ssql compare` in process, on the tiny model and small synthetic IDX files: every option is
// validated before any work (nothing is written, no training); the untrained baseline is the
// methods' initialization and takes no training step; a run over two seeds resumes: an
// interrupted pretraining continues to the same checkpoint an uninterrupted one reaches, kept
// evaluation results are used as they are, missing settings are evaluated without pretraining
// again, and a rerun with another budget is refused.
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, engine } from '../../engine/index.ts';
import { parseArgs } from '../../ssql/cli-args.ts';
import { pretrain } from '../../ssql/commands/pretrain-node.ts';
import { compare, compareOptions, comparePlanFromArgs, runCompare, untrainedTrainer } from '../../ssql/commands/compare-node.ts';
import type { ComparePlan } from '../../ssql/commands/compare-node.ts';
import { evaluateEncoder, loadEvalData } from '../../ssql/commands/evaluate-node.ts';
import { loadSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { encodeIdxU8 } from '../../ssql/data/idx.ts';
import { UNTRAINED } from '../../ssql/report.ts';
import type { CompareReport } from '../../ssql/report.ts';
import { Trainer } from '../../ssql/train.ts';

/** Grey 12x12 images in MNIST layout: four classes, each a bright quadrant plus noise. */
function writeDataset(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ssql-compare-data-'));
  const r = new Rng(5);
  const make = (count: number, stem: string) => {
    const px = new Uint8Array(count * 144);
    const labels = new Uint8Array(count);
    for (let n = 0; n < count; n++) {
      const c = n % 4;
      labels[n] = c;
      for (let y = 0; y < 12; y++) for (let x = 0; x < 12; x++) px[n * 144 + y * 12 + x] = Math.min(255, r.int(0, 90) + ((y >= 6 ? 2 : 0) + (x >= 6 ? 1 : 0) === c ? 160 : 0));
    }
    writeFileSync(join(dir, `${stem}-images-idx3-ubyte`), encodeIdxU8([count, 12, 12], px));
    writeFileSync(join(dir, `${stem}-labels-idx1-ubyte`), encodeIdxU8([count], labels));
  };
  make(64, 'train');
  make(32, 't10k');
  return `mnist:${dir}`;
}
const data = writeDataset();

function args(out: string, extra: string[] = []): string[] {
  return ['--data', data, '--model', 'tiny', '--proj-dim', '16', '--pred-hidden', '8', '--batch', '16', '--subset', '32', '--epochs', '1',
    '--settings', 'fp,4w4a', '--linear-epochs', '3', '--eval-train', '0', '--log-every', '1', '--json', '--out', out, ...extra];
}

function plan(out: string, extra: string[] = []): ComparePlan {
  return comparePlanFromArgs(parseArgs(args(out, extra), compareOptions()));
}

const tmp = (what: string) => mkdtempSync(join(tmpdir(), `ssql-compare-${what}-`));

test('compare validates every option before any work: nothing is written, nothing trains', async () => {
  const cases: [string[], RegExp][] = [
    [['--linear-epochs', '0'], /--linear-epochs must be a positive integer, got 0/],
    [['--linear-lr', '-1'], /--linear-lr must be a finite number > 0, got -1/],
    [['--eval-train', '-5'], /--eval-train must be a non-negative integer, got -5/],
    [['--eval-test', '2.5'], /--eval-test must be a non-negative integer, got 2.5/],
    [['--settings', '9w1a'], /--settings: bit setting '9w1a': activation bit-width 1 is out of range/],
    [['--seeds', '0,x'], /--seeds must be non-negative integers/],
    [['--seeds', '1,1'], /--seeds lists a seed twice/],
    [['--weight-grad', 'exact'], /--weight-grad must be one of reference, ste; got 'exact'/],
    [['--batch', '0'], /--batch must be an integer of at least 2, got 0/],
    [['--log-every', '0'], /--log-every must be a positive integer, got 0/],
    // SimSiam and SSQL read none of the methods' own settings: compare neither offers nor takes them.
    [['--ema-momentum', '0.9'], /unknown option --ema-momentum/],
    [['--moco-queue', '64'], /unknown option --moco-queue/],
  ];
  for (const flag of ['--ema-momentum', '--moco-dim', '--moco-queue', '--moco-temperature']) {
    assert.not.ok(Object.keys(compareOptions()).includes(flag.slice(2)), `compare --help lists ${flag}`);
  }
  for (const [extra, pattern] of cases) {
    const out = join(tmp('invalid'), 'out');
    const error = await runCompare(args(out, extra), 'summary').then(() => null, (e: Error) => e);
    assert.ok(error, `compare ${extra.join(' ')} was accepted`);
    assert.is(error!.name, 'UsageError', `${extra.join(' ')}: ${error!.message}`);
    assert.match(error!.message, pattern);
    assert.not.ok(existsSync(out), `compare ${extra.join(' ')} wrote ${out} before failing`);
  }
});

test('the untrained baseline is the methods\' initialization and takes no training step', async () => {
  const p = plan(tmp('untrained'));
  const train = loadDataset(data, 'train');
  const untrained = untrainedTrainer(p.base, 7, train);
  const state = untrained.net.stateDict();
  for (const method of ['simsiam', 'ssql'] as const) {
    const fresh = new Trainer({ ...p.base, method, seed: 7 }, train);
    for (const [name, t] of fresh.net.stateDict()) {
      assert.equal(Array.from(await state.get(name)!.toArray()), Array.from(await t.toArray()), `${method} ${name}`);
    }
    fresh.dispose();
  }
  for (const [name, t] of state) {
    if (name.endsWith('num_batches_tracked')) assert.is((await t.toArray())[0], 0, `${name}: no batch went through`);
    if (name.endsWith('running_mean')) assert.ok((await t.toArray()).every((v) => v === 0), `${name}: never updated`);
  }
  assert.is(untrained.globalStep, 0);
  untrained.dispose();
});

/** The tensors of a checkpoint file, as bytes per name. */
function tensorsOf(path: string): Record<string, number[]> {
  const { tensors } = loadSafetensors(path);
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.data)]));
}

test('compare over two seeds: untrained row, resume of an interrupted pretraining, kept and missing settings, budget checked', async () => {
  const out = tmp('run');
  const p0 = plan(out);
  // An interrupted SimSiam pretraining of seed 0: one step of two, then a checkpoint.
  const partial = await pretrain({ ...p0.base, method: 'simsiam', seed: 0 }, data, join(out, 'seed-0', 'simsiam'), { maxSteps: 1, quiet: true, logEvery: 1 });
  assert.is(partial.summary.steps, 1);
  partial.trainer.dispose();
  // The same pretraining uninterrupted, elsewhere.
  const whole = await pretrain({ ...p0.base, method: 'simsiam', seed: 0 }, data, join(tmp('whole'), 'simsiam'), { quiet: true, logEvery: 1 });
  whole.trainer.dispose();

  const first = await compare(p0, engine());
  assert.equal(first.seeds, [0]);
  assert.equal(tensorsOf(join(out, 'seed-0', 'simsiam', 'checkpoint.safetensors')), tensorsOf(whole.summary.checkpoint), 'the resumed pretraining ends where an uninterrupted one does');
  assert.equal(Object.keys(first.runs[0].linear), [UNTRAINED, 'simsiam', 'ssql']);
  assert.equal(Object.keys(first.untrained), ['fp', '4w4a']);
  assert.equal(Object.keys(first.knn![UNTRAINED]), ['fp', '4w4a']);
  // The untrained row is the evaluation of the untrained network, with the same protocol.
  const direct = untrainedTrainer(p0.base, 0, loadDataset(data, 'train'));
  const r = await evaluateEncoder(direct.net.encoder, loadEvalData(data, p0.eval), p0.eval, 0, 'direct', { quiet: true });
  direct.dispose();
  assert.equal(first.runs[0].linear[UNTRAINED], r.results);
  assert.equal(first.runs[0].knn![UNTRAINED], r.knn);

  // Tamper with what is kept, to see what a rerun reuses: a marker value in one result, and one
  // setting of another model removed.
  const simsiamEval = join(out, 'seed-0', 'simsiam', 'eval.json');
  const kept = JSON.parse(readFileSync(simsiamEval, 'utf8'));
  kept.linear.fp = 12.345;
  writeFileSync(simsiamEval, JSON.stringify(kept));
  const ssqlEval = join(out, 'seed-0', 'ssql', 'eval.json');
  const partialEval = JSON.parse(readFileSync(ssqlEval, 'utf8'));
  const dropped = partialEval.linear['4w4a'];
  delete partialEval.linear['4w4a'];
  writeFileSync(ssqlEval, JSON.stringify(partialEval));
  const ckpt = join(out, 'seed-0', 'ssql', 'checkpoint.safetensors');
  const log = join(out, 'seed-0', 'ssql', 'train.jsonl');
  const [ckptTime, logBytes] = [statSync(ckpt).mtimeMs, readFileSync(log, 'utf8')];

  const second: CompareReport = await compare(plan(out, ['--seeds', '0,1']), engine());
  assert.equal(second.seeds, [0, 1]);
  assert.is(second.runs[0].linear.simsiam.fp, 12.345, 'a kept result is used, not recomputed');
  assert.is(second.runs[0].linear.ssql['4w4a'], dropped, 'a missing setting is evaluated again, to the same value');
  assert.is(statSync(ckpt).mtimeMs, ckptTime, 'the finished pretraining was loaded, not run again');
  assert.is(readFileSync(log, 'utf8'), logBytes);
  assert.ok(existsSync(join(out, 'seed-1', 'ssql', 'checkpoint.safetensors')), 'the new seed was pretrained');
  assert.is(second.stats.linear.models.simsiam.fp.n, 2);
  const onDisk = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as CompareReport;
  assert.equal(onDisk.runs.map((run) => run.seed), [0, 1]);
  assert.match(readFileSync(join(out, 'report.md'), 'utf8'), /\| fp \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| [+-][\d.]+ \| \[/);

  // Another budget into the same directory is refused before any work.
  const before = readdirSync(out).sort();
  await compare(plan(out, ['--epochs', '2']), engine()).then(
    () => assert.unreachable('a different budget was accepted'),
    (e: Error) => assert.match(e.message, /holds a compare run with epochs=1, this run has 2: use the same options to continue it, or another --out/),
  );
  assert.equal(readdirSync(out).sort(), before);
});

test.run();
