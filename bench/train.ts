// Training throughput (images/s) of whole SimSiam and SSQL steps (augmentation, both passes,
// backward, SGD) for the small ResNet on 28x28x1 and the CIFAR ResNet-18 on 32x32x3, with a
// GPU time breakdown per kernel family (timestamp queries) and PyTorch on the CPU as the
// baseline where Debian's python3-torch is installed (bench/pytorch_train.py).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { engine } from '../engine/index.ts';
import { Trainer, DEFAULT_CONFIG } from '../ssql/train.ts';
import type { MethodName, ModelName } from '../ssql/train.ts';
import type { Baseline, BenchOptions, BenchRecord } from './harness.ts';

interface TrainCase { model: ModelName; method: MethodName; batch: number; size: number; channels: number }

function syntheticData(count: number, channels: number, size: number) {
  const images = new Uint8Array(count * channels * size * size);
  let s = 12345;
  for (let i = 0; i < images.length; i++) images[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  return { images, labels: new Int32Array(count), count, channels, height: size, width: size };
}

function pytorchBaseline(c: TrainCase, runs: number): Baseline {
  const python = '/usr/bin/python3';
  const script = fileURLToPath(new URL('./pytorch_train.py', import.meta.url));
  if (!existsSync(python)) return { system: 'pytorch-cpu', skipped: 'no /usr/bin/python3' };
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return { system: 'pytorch-cpu', skipped: "Debian's python3-torch is not installed (apt-get install python3-torch)" };
  const r = spawnSync(python, [script, c.model, c.method, String(c.batch), String(runs)], { encoding: 'utf8', timeout: 3_600_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as { median_ms: number };
    return { system: 'pytorch-cpu', median_ms: j.median_ms };
  } catch {
    return { system: 'pytorch-cpu', skipped: `pytorch_train.py failed: ${(r.stderr || line).trim().split('\n').pop()}` };
  }
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const cases: TrainCase[] = [];
  for (const method of ['simsiam', 'ssql'] as MethodName[]) {
    cases.push({ model: 'small', method, batch: opts.quick ? 64 : 256, size: 28, channels: 1 });
    if (!opts.quick) {
      cases.push({ model: 'resnet18', method, batch: 32, size: 32, channels: 3 });
      cases.push({ model: 'resnet18', method, batch: 128, size: 32, channels: 3 });
    }
  }
  const caseName = (c: TrainCase) => `${c.method} step ${c.model} ${c.channels}x${c.size}x${c.size} batch ${c.batch}`;
  if (opts.only) cases.splice(0, cases.length, ...cases.filter((c) => caseName(c).includes(opts.only!)));
  const runs = opts.quick ? 2 : 3;
  const records: BenchRecord[] = [];
  for (const c of cases) {
    const data = syntheticData(c.batch * (runs + 2), c.channels, c.size);
    const projDim = c.model === 'small' ? 512 : 2048;
    const trainer = new Trainer({ ...DEFAULT_CONFIG, method: c.method, model: c.model, batchSize: c.batch, projDim, predHidden: projDim / 4, epochs: 1 }, data);
    const e = engine();
    const stepOnce = async () => {
      const r = trainer.step();
      await e.sync();
      for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
    };
    await stepOnce(); // warm-up: compiles every pipeline
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      if (i === runs - 1) e.startProfile();
      const t0 = performance.now();
      await stepOnce();
      samples.push(performance.now() - t0);
    }
    const profile = [...(await e.stopProfile()).entries()].sort((a, b) => b[1].ms - a[1].ms);
    trainer.dispose();
    samples.sort((a, b) => a - b);
    // The profiled run splits every dispatch into its own pass: time it apart from the others.
    const timed = samples.length > 1 ? samples.slice(0, -1) : samples;
    const median = timed[Math.floor(timed.length / 2)];
    const baseline = pytorchBaseline(c, runs);
    if (baseline.median_ms) baseline.ratio = baseline.median_ms / median;
    const gpuTotal = profile.reduce((s, [, v]) => s + v.ms, 0);
    console.log(`\n${c.method} ${c.model} batch ${c.batch}: GPU time by kernel family (profiled step, ${gpuTotal.toFixed(0)} ms):`);
    for (const [k, v] of profile.slice(0, 10)) console.log(`  ${k.padEnd(28)} ${v.ms.toFixed(1).padStart(9)} ms ${((100 * v.ms) / gpuTotal).toFixed(1).padStart(5)}%  x${v.count}`);
    records.push({
      case: caseName(c), op: `${c.method}_step`,
      median_ms: median, min_ms: timed[0], max_ms: timed[timed.length - 1], runs: timed.length,
      images_per_s: (c.batch * 1000) / median, baseline,
      breakdown_ms: Object.fromEntries(profile.map(([k, v]) => [k, Number(v.ms.toFixed(2))])),
    });
  }
  return records;
}
