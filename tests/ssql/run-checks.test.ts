// Everything `ssql pretrain` and `ssql eval` check before the GPU trains: each bad number is a
// usage error naming its flag; --out is protected (checkpoint, lock, writability, stale files);
// a resume must match the checkpoint's data, bits, method and model and may not drop epochs;
// damaged metadata and a checkpoint of another image shape get errors naming file and field;
// a projector too wide for the adapter is refused naming --proj-dim. In process (fast).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { engine } from '../../engine/index.ts';
import { UsageError, parseArgs } from '../../ssql/cli-args.ts';
import { openEvalCheckpoint } from '../../ssql/cli.ts';
import { RUN_OPTIONS, TRAIN_OPTIONS, pretrainOptionsFromArgs, trainConfigFromArgs } from '../../ssql/commands/train-options.ts';
import { checkDeviceLimits, preparePretrain } from '../../ssql/commands/pretrain-node.ts';
import { saveSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { RunDirectory } from '../../ssql/checkpoint/run-dir-node.ts';
import { FASHION_MNIST_DIR } from '../../ssql/data/files-node.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { CheckpointFormatError } from '../../ssql/format-error.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';

const SPEC = { ...TRAIN_OPTIONS, ...RUN_OPTIONS }; // the pretrain command's options
const root = mkdtempSync(join(tmpdir(), 'ssql-checks-'));
let dirs = 0;
const freshDir = () => join(root, `d${dirs++}`);

function options(...argv: string[]): { config: TrainConfig; run: ReturnType<typeof pretrainOptionsFromArgs> } {
  const a = parseArgs(argv, SPEC);
  return { config: trainConfigFromArgs(a), run: pretrainOptionsFromArgs(a) };
}

/** Runs fn and returns the UsageError's message (fails if it throws anything else or nothing). */
function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.instance(e, UsageError, `not a UsageError: ${(e as Error).stack}`);
    return (e as Error).message;
  }
  assert.unreachable('no error');
  return '';
}

/** Warnings written to stderr while fn runs. */
function warnings<T>(fn: () => T): { value: T; stderr: string } {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { stderr += chunk.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { value: fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('every bad number is a usage error naming the flag and the allowed range', () => {
  const cases: [string[], RegExp][] = [
    [['--lr', '-1'], /^--lr must be a finite number > 0, got -1$/],
    [['--lr', '0'], /^--lr must be a finite number > 0, got 0$/],
    [['--lr', '1e400'], /^--lr must be a number, got '1e400'$/],
    [['--weight-decay', '-0.001'], /^--weight-decay must be a finite number >= 0, got -0\.001$/],
    [['--momentum', '1'], /^--momentum must be a finite number >= 0 and < 1, got 1$/],
    [['--momentum', '-0.1'], /^--momentum must be a finite number >= 0 and < 1, got -0\.1$/],
    [['--subset', '-5'], /^--subset must be a non-negative integer, got -5$/],
    [['--subset', '100.5'], /^--subset must be a non-negative integer, got 100\.5$/],
    [['--seed', '1.5'], /^--seed must be a non-negative integer, got 1\.5$/],
    [['--seed', '-1'], /^--seed must be a non-negative integer, got -1$/],
    [['--seed', '4294967296'], /^--seed must be at most 4294967295, got 4294967296$/],
    [['--max-steps', '-1'], /^--max-steps must be a positive integer, got -1$/],
    [['--max-steps', '0'], /^--max-steps must be a positive integer, got 0$/],
    [['--log-every', '0'], /^--log-every must be a positive integer, got 0$/],
    [['--epochs', '0'], /^--epochs must be a positive integer, got 0$/],
    [['--epochs', '2.5'], /^--epochs must be a positive integer, got 2\.5$/],
    [['--batch', '1'], /^--batch must be an integer of at least 2, got 1$/],
    [['--proj-dim', '0'], /^--proj-dim must be a positive integer, got 0$/],
    [['--pred-hidden', '8.5'], /^--pred-hidden must be a positive integer, got 8\.5$/],
    [['--crop', '-2'], /^--crop must be a non-negative integer, got -2$/],
    [['--wbits', '1-8'], /^--wbits must be within 2-8 with low <= high, got '1-8'$/],
    [['--wbits', '2-9'], /^--wbits must be within 2-8 with low <= high, got '2-9'$/],
    [['--wbits', '8-2'], /^--wbits must be within 2-8 with low <= high, got '8-2'$/],
    [['--abits', '0-8'], /^--abits must be within 1-8 with low <= high, got '0-8'$/],
    [['--abits', '4-x'], /^--abits must look like 1-8 \(a bit range\) or one bit-width, got '4-x'$/],
    [['--checkpoint-every', '-1'], /^--checkpoint-every must be a non-negative integer, got -1$/],
    [['--checkpoint-every', '0.5'], /^--checkpoint-every must be a non-negative integer, got 0\.5$/],
    [['--checkpoint-minutes', '-3'], /^--checkpoint-minutes must be a finite number >= 0, got -3$/],
    [['--resume', '--force'], /^--resume and --force contradict each other/],
  ];
  for (const [argv, pattern] of cases) assert.match(usageError(() => options(...argv)), pattern, argv.join(' '));
  // The edges of every range are accepted.
  const edge = options('--momentum', '0', '--weight-decay', '0', '--abits', '1-8', '--wbits', '2-8', '--seed', '4294967295', '--batch', '2', '--checkpoint-every', '0', '--checkpoint-minutes', '0', '--max-steps', '1', '--crop', '12');
  assert.equal([edge.config.momentum, edge.config.weightDecay, edge.config.abits, edge.config.wbits, edge.config.seed, edge.config.batchSize, edge.config.cropSize], [0, 0, [1, 8], [2, 8], 4294967295, 2, 12]);
  assert.equal([edge.run.checkpointEvery, edge.run.checkpointMinutes, edge.run.maxSteps], [0, 0, 1]);
});

test('numbers that depend on the dataset: --subset beyond it, --batch beyond the subset', () => {
  const out = freshDir();
  assert.match(usageError(() => preparePretrain(options('--subset', '100000').config, 'fashion-mnist', out)), /^--subset 100000 exceeds the 60000 training images of --data fashion-mnist$/);
  assert.match(usageError(() => preparePretrain(options('--subset', '64', '--batch', '128').config, 'fashion-mnist', out)), /^--batch 128 exceeds the 64 training images \(--subset 64\): an epoch would have no step$/);
  assert.not.ok(existsSync(out), 'nothing is created for a refused run');
});

test('--out: a checkpoint there needs --resume or --force; --resume needs one; a file or unwritable path is refused', () => {
  const warn = () => {};
  const out = freshDir();
  mkdirSync(out);
  writeFileSync(join(out, 'checkpoint.safetensors'), 'an earlier result');
  assert.match(usageError(() => RunDirectory.open(out, { resume: false, force: false, warn })),
    /^--out .*d\d+ already holds a checkpoint \(.*checkpoint\.safetensors\): pass --resume to continue that run, --force to start over and replace it, or another --out$/);
  assert.equal(readdirSync(out), ['checkpoint.safetensors'], 'a refused run leaves no lock behind');
  const forced = RunDirectory.open(out, { resume: false, force: true, warn });
  assert.ok(existsSync(forced.lock));
  forced.startFresh();
  assert.not.ok(existsSync(forced.checkpoint), '--force replaces the old checkpoint when training starts');
  forced.release();
  assert.not.ok(existsSync(forced.lock));

  const empty = freshDir();
  assert.match(usageError(() => RunDirectory.open(empty, { resume: true, force: false, warn })), /^--resume: no checkpoint at .*checkpoint\.safetensors to continue$/);
  const file = join(root, 'a-file');
  writeFileSync(file, '');
  assert.match(usageError(() => RunDirectory.open(file, { resume: false, force: false, warn })), /^--out .*a-file is a file, not a directory$/);
  assert.match(usageError(() => RunDirectory.open(join(file, 'sub'), { resume: false, force: false, warn })), /^--out .*a-file\/sub: cannot create the directory \(ENOTDIR\)$/);
});

test('the lock: a live holder refuses a second run naming its pid; a dead one is taken over with a warning; stale temporaries go', async () => {
  const out = freshDir();
  mkdirSync(out);
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  const pid = sleeper.pid!;
  writeFileSync(join(out, '.lock'), JSON.stringify({ pid, host: hostname(), started: '2026-01-01T00:00:00.000Z' }));
  writeFileSync(join(out, 'checkpoint.safetensors.tmp-123456'), 'half a checkpoint');
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  assert.match(usageError(() => RunDirectory.open(out, { resume: false, force: false, warn })),
    new RegExp(`^--out .* is in use by another run \\(pid ${pid} on .*, started 2026-01-01T00:00:00\\.000Z; lock file .*\\.lock\\): wait for it to finish or use another --out`));
  await new Promise((resolve) => { sleeper.on('exit', resolve); sleeper.kill('SIGKILL'); });
  const dir = RunDirectory.open(out, { resume: false, force: false, warn });
  assert.match(warnings[0], new RegExp(`^taking over .*\\.lock: the run that held it \\(pid ${pid}, started 2026-01-01T00:00:00\\.000Z\\) is gone$`));
  assert.match(warnings[1], /^removed .*checkpoint\.safetensors\.tmp-123456, a temporary file left by a run that stopped while writing it$/);
  assert.equal(JSON.parse(readFileSync(dir.lock, 'utf8')).pid, process.pid);
  assert.equal(readdirSync(out), ['.lock']);
  dir.release();
});

test('resuming trims train.jsonl back to the checkpoint (and drops a line cut short by a kill)', () => {
  const out = freshDir();
  mkdirSync(out);
  const lines = Array.from({ length: 10 }, (_, step) => JSON.stringify({ step, loss: step / 10 }));
  writeFileSync(join(out, 'train.jsonl'), lines.join('\n') + '\n{"step": 10, "lo');
  writeFileSync(join(out, 'checkpoint.safetensors'), '');
  const dir = RunDirectory.open(out, { resume: true, force: false, warn: () => {} });
  assert.is(dir.trimLog(6), 5);
  assert.is(readFileSync(dir.log, 'utf8'), lines.slice(0, 6).join('\n') + '\n');
  dir.release();
});

const data = loadDataset('fashion-mnist', 'train');
const tiny: TrainConfig = { ...DEFAULT_CONFIG, model: 'tiny', projDim: 16, predHidden: 8, subset: 32, batchSize: 8, epochs: 2, cropSize: 8 };

/** A real checkpoint of `config` on `images` in a new directory (what pretrain writes). */
async function checkpointDir(config: TrainConfig, images: LabeledImages = data, edit?: (metadata: Record<string, string>) => void): Promise<string> {
  const trainer = new Trainer(config, images);
  const { tensors, metadata } = await trainer.checkpoint();
  trainer.dispose();
  edit?.(metadata);
  const out = freshDir();
  mkdirSync(out);
  saveSafetensors(join(out, 'checkpoint.safetensors'), tensors, metadata);
  return out;
}

test('--resume refuses another --data, bit range, method, model or fewer epochs, naming each; allows a new --lr with a note', async () => {
  const out = await checkpointDir({ ...tiny, data: 'fashion-mnist' });
  const resume = (over: Partial<TrainConfig>, spec = 'fashion-mnist') => preparePretrain({ ...tiny, ...over }, spec, out, { resume: true });
  const cases: [Partial<TrainConfig>, RegExp, string?][] = [
    [{}, /^--resume from .*: --data: the checkpoint was made with --data fashion-mnist, this run has mnist:\/.* \(data\)\. Pass the options it was made with, or --force to start over$/, `mnist:${FASHION_MNIST_DIR}`],
    [{ wbits: [4, 8] }, /--wbits: the checkpoint was made with --wbits 2-8, this run has 4-8 \(wbits\)/],
    [{ abits: [2, 8] }, /--abits: the checkpoint was made with --abits 4-8, this run has 2-8 \(abits\)/],
    [{ method: 'simsiam' }, /--method: the checkpoint was made with --method ssql, this run has simsiam \(method\)/],
    [{ model: 'small' }, /--model: the checkpoint was made with --model tiny, this run has small \(model\)/],
    [{ epochs: 1 }, /--epochs: the checkpoint's run was set for 2 epochs, this run has 1; a resumed run may add epochs, not remove them/],
    [{ seed: 3, batchSize: 4 }, /--batch: .* has 4 \(batchSize\); --seed: the checkpoint was made with --seed 0, this run has 3 \(seed\)/],
  ];
  for (const [over, pattern, spec] of cases) assert.match(usageError(() => resume(over, spec)), pattern, JSON.stringify(over));
  const { value: prep, stderr } = warnings(() => resume({ lr: 0.01, epochs: 3 }));
  assert.match(stderr, /^warning: resuming with --lr 0\.01 \(the checkpoint was made with 0\.05\)\nwarning: resuming with --epochs 3 \(the checkpoint was made with 2\)\n$/);
  assert.ok(prep.resumeFrom);
  prep.dir.release();
});

test('damaged metadata and a checkpoint of another image shape: errors naming the file and the field', async () => {
  const noRng = await checkpointDir({ ...tiny, data: 'fashion-mnist' }, data, (m) => { delete m.rng; });
  const file = join(noRng, 'checkpoint.safetensors');
  const e1 = (() => { try { preparePretrain({ ...tiny }, 'fashion-mnist', noRng, { resume: true }); } catch (e) { return e as CheckpointFormatError; } })();
  assert.instance(e1, CheckpointFormatError);
  assert.is(e1!.message, `${file}: metadata 'rng' is missing (not a checkpoint written by ssql pretrain, or written by an older version)`);
  assert.equal([e1!.file, e1!.field], [file, '__metadata__.rng']);
  assert.not.ok(existsSync(join(noRng, '.lock')), 'the lock is released after a refused resume');

  const badJson = await checkpointDir({ ...tiny }, data, (m) => { m.config = '{"method": "ssql",'; });
  assert.throws(() => openEvalCheckpoint(join(badJson, 'checkpoint.safetensors'), 'fashion-mnist'),
    (e: Error) => e instanceof CheckpointFormatError && /checkpoint\.safetensors: metadata 'config' is not valid JSON \(/.test(e.message));

  // A CIFAR-shaped run evaluated on Fashion-MNIST: both named before any GPU work.
  const rgb: LabeledImages = { images: new Uint8Array(16 * 3 * 32 * 32).map((_, i) => (i * 37) % 256), labels: new Int32Array(16), count: 16, channels: 3, height: 32, width: 32 };
  const cifar = await checkpointDir({ ...tiny, subset: 0, data: 'cifar10:/data/cifar-10-batches-bin' }, rgb);
  assert.match(usageError(() => openEvalCheckpoint(join(cifar, 'checkpoint.safetensors'), 'fashion-mnist')),
    /^--data fashion-mnist has 1x28x28 images, but .*checkpoint\.safetensors was trained on cifar10:\/data\/cifar-10-batches-bin \(3x32x32 images\): evaluate it on data of the shape it was trained on$/);
  const gray = await checkpointDir({ ...tiny, data: 'fashion-mnist' });
  assert.is(openEvalCheckpoint(join(gray, 'checkpoint.safetensors'), 'fashion-mnist').config.model, 'tiny');
});

test('a projector or batch too large for the adapter is refused naming the flag, before anything is built', () => {
  const shape = { channels: 1, height: 28, width: 28 };
  const limit = engine().device.limits.maxStorageBufferBindingSize;
  const dim = Math.ceil(Math.sqrt(limit / 4)) + 1;
  assert.match(usageError(() => checkDeviceLimits({ ...DEFAULT_CONFIG, projDim: dim }, shape, engine())),
    new RegExp(`^--proj-dim too large for this adapter: the projector weight \\[${dim}, ${dim}\\] \\(f32\\) needs ${dim * dim * 4} bytes, more than its largest storage buffer \\(maxStorageBufferBindingSize ${limit}, maxBufferSize \\d+ bytes\\); lower --proj-dim$`));
  const batch = Math.ceil(limit / (16 * 28 * 28 * 4)) + 1;
  assert.match(usageError(() => checkDeviceLimits({ ...DEFAULT_CONFIG, batchSize: batch }, shape, engine())), /^--batch, --crop, --model too large for this adapter: the stage 1 activations \[\d+, 16, 28, 28\]/);
  checkDeviceLimits(DEFAULT_CONFIG, shape, engine()); // the defaults fit
  checkDeviceLimits({ ...DEFAULT_CONFIG, projDim: Math.floor(Math.sqrt(limit / 4)) }, shape, engine());
});

test.run();
