// Training throughput (images/s) of whole SimSiam and SSQL steps (ssql/train.ts Trainer.step:
// batch gather, augmentation of two views, both passes, backward, SGD; a fresh bit pair every
// SSQL step) for the small ResNet on 28x28x1 at batch 64 and the CIFAR ResNet-18 on 32x32x3 at
// batch 32 (bench/shapes.ts), against PyTorch on the CPU doing the same step
// (bench/pytorch_train.py, Debian's python3-torch), their steps alternating with ours in the
// same run. After the timed steps, one extra step, not timed, is profiled (timestamp queries)
// for the GPU time per kernel family: profiling gives every dispatch its own pass.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { engine, tunePending, tuningEnabled } from '../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../ssql/train.ts';
import type { MethodName } from '../ssql/train.ts';
import { stats } from './harness.ts';
import type { Baseline, BenchOptions, BenchRecord } from './harness.ts';
import { STEPS } from './shapes.ts';
import type { StepSizes } from './shapes.ts';

const PYTHON = '/usr/bin/python3';
const SYSTEM = 'pytorch-cpu';
/** Longest wait for one PyTorch reply (building the model, or one step). */
const REPLY_TIMEOUT_MS = 600_000;

interface TrainCase { sizes: StepSizes; method: MethodName }

const caseName = (c: TrainCase) => `${c.method} step ${c.sizes.model} ${c.sizes.channels}x${c.sizes.size}x${c.sizes.size} batch ${c.sizes.batch}`;

function syntheticImages(count: number, channels: number, size: number) {
  const images = new Uint8Array(count * channels * size * size);
  let s = 12345;
  for (let i = 0; i < images.length; i++) images[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return { images, labels: new Int32Array(count), count, channels, height: size, width: size };
}

/** bench/pytorch_train.py running one case; `step()` runs one step there and returns its ms. */
class PyTorchRun {
  private readonly lines: AsyncIterator<string>;
  private stderr = '';
  detail = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-4000); });
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  /** Starts the baseline for `c`, or says why it cannot run here. */
  static async start(c: TrainCase): Promise<PyTorchRun | { skipped: string }> {
    if (!existsSync(PYTHON)) return { skipped: `no ${PYTHON}` };
    const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status !== 0) return { skipped: `${PYTHON} cannot import torch (install Debian's python3-torch): ${lastLine(probe.stderr)}` };
    const script = fileURLToPath(new URL('./pytorch_train.py', import.meta.url));
    const run = new PyTorchRun(spawn(PYTHON, [script, c.sizes.model, c.method, String(c.sizes.batch)]));
    try {
      const ready = JSON.parse(await run.reply()) as { torch: string; threads: number };
      run.detail = `torch ${ready.torch}, ${ready.threads} threads`;
      return run;
    } catch (e) {
      run.close();
      return { skipped: (e as Error).message };
    }
  }

  async step(): Promise<number> {
    this.child.stdin.write('step\n');
    return (JSON.parse(await this.reply()) as { step_ms: number }).step_ms;
  }

  close(): void {
    if (this.child.exitCode === null) {
      this.child.stdin.end('quit\n');
      this.child.kill();
    }
  }

  private async reply(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`pytorch_train.py gave no reply in ${REPLY_TIMEOUT_MS / 1000} s`)), REPLY_TIMEOUT_MS);
    });
    try {
      const r = await Promise.race([this.lines.next(), timeout]);
      if (r.done) {
        await new Promise((resolve) => (this.child.exitCode === null ? this.child.once('exit', resolve) : resolve(null)));
        throw new Error(`pytorch_train.py exited (${this.child.exitCode}): ${lastLine(this.stderr)}`);
      }
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

async function runCase(c: TrainCase, runs: number): Promise<BenchRecord> {
  // Enough images for the warm-up, the timed steps and the profiled step, in one epoch.
  const steps = runs + 2;
  const data = syntheticImages(c.sizes.batch * steps, c.sizes.channels, c.sizes.size);
  const trainer = new Trainer({
    ...DEFAULT_CONFIG, method: c.method, model: c.sizes.model, batchSize: c.sizes.batch,
    projDim: c.sizes.projDim, predHidden: c.sizes.predHidden, epochs: 1,
  }, data);
  const e = engine();
  const ourStep = async (): Promise<number> => {
    const t0 = performance.now();
    const r = trainer.step();
    await e.sync();
    for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
    return performance.now() - t0;
  };
  const started = await PyTorchRun.start(c);
  let torch = started instanceof PyTorchRun ? started : null;
  let baseline: Baseline = { system: SYSTEM, skipped: 'skipped' in started ? started.skipped : '' };
  const torchMs: number[] = [];
  const torchStep = async () => {
    if (!torch) return;
    try {
      torchMs.push(await torch.step());
    } catch (err) {
      baseline = { system: SYSTEM, skipped: (err as Error).message };
      torch.close();
      torch = null;
    }
  };

  await ourStep(); // warm-up: compiles every pipeline
  // With tuning on, the kernel variants of the step's shapes are measured now, as in training.
  if (tuningEnabled()) await tunePending();
  await torchStep();
  torchMs.length = 0; // PyTorch's warm-up
  const ours: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(await ourStep());
    await torchStep();
  }
  e.startProfile();
  await ourStep();
  const profile = [...(await e.stopProfile()).entries()].sort((a, b) => b[1].ms - a[1].ms);
  trainer.dispose();

  const t = stats(ours);
  if (torch) {
    const b = stats(torchMs);
    baseline = { system: SYSTEM, ...b, images_per_s: (c.sizes.batch * 1000) / b.median_ms, ratio: b.median_ms / t.median_ms, detail: torch.detail };
    torch.close();
  }
  const gpuTotal = profile.reduce((s, [, v]) => s + v.ms, 0);
  console.log(`\n${caseName(c)}: GPU time by kernel family (the profiled step, ${gpuTotal.toFixed(0)} ms):`);
  for (const [k, v] of profile.slice(0, 10)) console.log(`  ${k.padEnd(28)} ${v.ms.toFixed(1).padStart(9)} ms ${((100 * v.ms) / gpuTotal).toFixed(1).padStart(5)}%  x${v.count}`);
  return {
    case: caseName(c), op: `${c.method}_step`, ...t,
    images_per_s: (c.sizes.batch * 1000) / t.median_ms, baseline,
    breakdown_ms: Object.fromEntries(profile.map(([k, v]) => [k, Number(v.ms.toFixed(2))])),
  };
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const cases: TrainCase[] = [];
  for (const sizes of opts.quick ? STEPS.slice(0, 1) : STEPS) {
    for (const method of ['simsiam', 'ssql'] as MethodName[]) cases.push({ sizes, method });
  }
  const selected = opts.only === undefined ? cases : cases.filter((c) => caseName(c).includes(opts.only!));
  const runs = opts.quick ? 3 : 5;
  const records: BenchRecord[] = [];
  for (const c of selected) records.push(await runCase(c, runs));
  return records;
}
