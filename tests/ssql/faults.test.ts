// `ssql pretrain` as a job scheduler and an impatient user treat it: child processes killed with
// SIGKILL at seeded random points (mid-step or mid-checkpoint-write), stopped with SIGTERM, run
// twice into one --out, driven to NaN, and resumed from a checkpoint holding NaN. Resuming after
// every kill must start from a loadable checkpoint and end bit-identical to an uninterrupted
// run; a diverged run must exit non-zero and keep its last good checkpoint.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../engine/index.ts';
import { loadSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { decodeSafetensors, encodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import { readPosition } from '../../ssql/checkpoint/state.ts';
import { RunDirectory } from '../../ssql/checkpoint/run-dir-node.ts';

const bin = fileURLToPath(new URL('../../bin/ssql.mjs', import.meta.url));
/** 10 steps an epoch, 20 in all; a checkpoint after every step. */
const TOTAL_STEPS = 20;
const RUN = ['--model', 'tiny', '--proj-dim', '16', '--pred-hidden', '8', '--subset', '80', '--batch', '8', '--epochs', '2', '--crop', '12', '--log-every', '1', '--checkpoint-every', '1'];

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A child `ssql` run; `onStep` sees each progress line's global step and can signal the child. */
function ssql(args: string[], onStep?: (step: number, kill: (s: NodeJS.Signals) => void) => void): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      for (const m of text.matchAll(/\] step (\d+)\//g)) onStep?.(Number(m[1]), (s) => child.kill(s));
    });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`ssql ${args.join(' ')}: no exit after 180 s\n${stderr}`)); }, 180_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // 'exit' may precede the last output; 'close' follows it.
      child.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
}

function globalStep(file: string): number {
  return readPosition(loadSafetensors(file).metadata, file).globalStep;
}

/** The log's step indices in order. */
function loggedSteps(out: string): number[] {
  return readFileSync(join(out, 'train.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
}

const root = mkdtempSync(join(tmpdir(), 'ssql-faults-'));
const straightOut = join(root, 'straight');

test('SIGKILL at 3 seeded points and a SIGTERM, each resumed: the end is bit-identical to an uninterrupted run', async () => {
  // The uninterrupted run, alongside (kills are timed by step, not by the clock).
  const straightRun = ssql(['pretrain', ...RUN, '--out', straightOut, '--json']);
  const out = join(root, 'interrupted');
  const rng = new Rng(12);
  let checkpointStep = 0;
  for (let kill = 0; kill < 3; kill++) {
    // Kill once the run has passed a random step of its quarter of the run (steps 2-5, 7-10,
    // 12-15), after a random delay: mid-step or mid-write.
    const target = Math.max(checkpointStep + 1, 2 + 5 * kill + rng.int(0, 4));
    const delayMs = rng.int(0, 150);
    let sent = false;
    const r = await ssql(['pretrain', ...RUN, '--out', out, ...(kill > 0 ? ['--resume'] : [])], (step, send) => {
      if (step >= target && !sent) {
        sent = true;
        setTimeout(() => send('SIGKILL'), delayMs);
      }
    });
    assert.is(r.signal, 'SIGKILL', `run ${kill} was to be killed after step ${target}: ${r.stderr}`);
    if (kill > 0) assert.match(r.stderr, /taking over .*\.lock: the run that held it \(pid \d+/, 'a killed run\'s lock is taken over');
    const ckpt = join(out, 'checkpoint.safetensors');
    assert.ok(existsSync(ckpt), `no checkpoint after kill ${kill}`);
    const step = globalStep(ckpt); // loadable, finite, with a position: what the next run resumes
    assert.ok(step >= Math.max(target - 1, checkpointStep) && step < TOTAL_STEPS - 1, `kill ${kill}: checkpoint at step ${step}, target ${target}`);
    checkpointStep = step;
  }

  // SIGTERM: the run stops after its step, writes the checkpoint and exits 143. While it runs,
  // a second run into the same --out is refused (the lock names the first run's pid).
  const target = checkpointStep + 1;
  let contention: string | null = null;
  const termed = await ssql(['pretrain', ...RUN, '--out', out, '--resume'], (step, send) => {
    if (step < target || contention !== null) return;
    try {
      RunDirectory.open(out, { resume: true, force: false, warn: () => {} }).release();
      contention = 'a second run was let in';
    } catch (e) {
      contention = (e as Error).message;
    }
    send('SIGTERM');
  });
  const refusal = contention ?? `never reached step ${target}: ${termed.stderr}`;
  assert.ok(/^--out .* is in use by another run \(pid \d+ on .*, started .*; lock file .*\.lock\)/.test(refusal), refusal);
  assert.is(termed.code, 143, termed.stderr);
  assert.match(termed.stderr, /SIGTERM: stopping after this step and writing a checkpoint/);
  const stopped = /^interrupted \(SIGTERM\): (\d+) steps \((\d+) in all\)/.exec(termed.stdout);
  assert.ok(stopped, termed.stdout);
  const [steps, termStep] = [Number(stopped[1]), Number(stopped[2])];
  assert.is(termStep - steps, checkpointStep, 'the run resumed from the checkpoint the kill left');
  assert.ok(termStep >= target, `stopped at ${termStep}, before the SIGTERM at ${target}`);
  assert.is(globalStep(join(out, 'checkpoint.safetensors')), termStep, 'SIGTERM wrote the checkpoint of its last step');

  const last = await ssql(['pretrain', ...RUN, '--out', out, '--resume', '--json']);
  assert.is(last.code, 0, last.stderr);
  assert.is((JSON.parse(last.stdout) as { resumed_from: number }).resumed_from, termStep);

  const straight = await straightRun;
  assert.is(straight.code, 0, straight.stderr);
  assert.equal(loggedSteps(straightOut), [...Array(TOTAL_STEPS).keys()]);
  const a = readFileSync(join(straightOut, 'checkpoint.safetensors'));
  const b = readFileSync(join(out, 'checkpoint.safetensors'));
  const ta = decodeSafetensors(a).tensors;
  const tb = decodeSafetensors(b).tensors;
  assert.equal(Object.keys(tb).sort(), Object.keys(ta).sort());
  for (const name of Object.keys(ta)) assert.ok(Buffer.from(ta[name].data).equals(Buffer.from(tb[name].data)), `tensor '${name}' differs from the uninterrupted run`);
  assert.ok(a.equals(b), 'the checkpoint files (tensors, position, RNG states, config) are byte-identical');
  assert.equal(loggedSteps(out), [...Array(TOTAL_STEPS).keys()], 'train.jsonl holds every step once, in order');
  assert.equal(readdirSync(out).sort(), ['checkpoint.safetensors', 'train.jsonl'], 'no lock or temporary file is left');
});

test('a run driven to NaN exits 1 naming the step and what diverged, and keeps its last good checkpoint', async () => {
  // --lr 1e20: step 1 is still finite; step 2 leaves NaN parameters (its loss still reads 0).
  const viaTensors = join(root, 'nan-tensors');
  const p = await ssql(['pretrain', ...RUN, '--lr', '1e20', '--out', viaTensors]);
  assert.is(p.code, 1, p.stderr);
  assert.match(p.stderr, /TrainingDiverged: training diverged at step 2 of 20: tensor '[\w.]+' holds \d+ non-finite values, the first (NaN|-?Infinity) at index \d+ \(and \d+ more tensors\); nothing from it was saved, the last good checkpoint \(step 1\) is kept in /);
  assert.is(globalStep(join(viaTensors, 'checkpoint.safetensors')), 1, 'the step-1 checkpoint is intact');
  assert.ok(!existsSync(join(viaTensors, '.lock')), 'the lock is released');

  // No checkpoint before it (the epoch ends at step 10): the loss read back at step 3 catches it.
  const viaLoss = join(root, 'nan-loss');
  const r = await ssql(['pretrain', ...RUN, '--checkpoint-every', '0', '--lr', '1e20', '--out', viaLoss]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /training diverged at step 3 of 20: the loss is NaN; nothing from it was saved, no checkpoint was written/);
  assert.ok(!existsSync(join(viaLoss, 'checkpoint.safetensors')));
});

test('eval and --resume refuse a checkpoint holding a NaN, naming the tensor', async () => {
  const good = readFileSync(join(straightOut, 'checkpoint.safetensors'));
  const { tensors, metadata } = decodeSafetensors(good);
  const w = tensors['encoder.layer2.0.conv1.weight'];
  new DataView(w.data.buffer, w.data.byteOffset).setFloat32(4 * 7, NaN, true);
  const out = join(root, 'poisoned');
  mkdirSync(out);
  const file = join(out, 'checkpoint.safetensors');
  writeFileSync(file, encodeSafetensors(tensors, metadata));
  const ev = await ssql(['eval', '--checkpoint', file]);
  assert.is(ev.code, 1, ev.stderr);
  assert.match(ev.stderr, /tensor 'encoder\.layer2\.0\.conv1\.weight' F32 \[8, 4, 3, 3\] holds 1 non-finite values, the first NaN at index 7/);
  const re = await ssql(['pretrain', ...RUN, '--out', out, '--resume']);
  assert.is(re.code, 1, re.stderr);
  assert.match(re.stderr, /tensor 'encoder\.layer2\.0\.conv1\.weight' .* holds 1 non-finite values/);
  assert.ok(readFileSync(file).equals(Buffer.from(encodeSafetensors(tensors, metadata))), 'the refused checkpoint is left as it was');
});

test.run();
