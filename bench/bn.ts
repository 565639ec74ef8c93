// Batch norm (training mode) forward and backward in GB/s at the shapes of a CIFAR ResNet-18
// (batch 32) and of a small ResNet on 28x28 inputs, each against an element-wise kernel and a
// plain buffer copy moving the same number of bytes, timed alternately in the same run
// (../shared/BENCH.md).
// Bytes are counted once: forward reads x and writes y (8 bytes per element; the kernels read x
// twice, statistics then normalize); backward reads dy and x and writes dx (12 bytes per element;
// they read dy and x twice). The per-channel vectors are negligible and not counted.
import { Tensor, batchNorm, engine, relu, scope } from '../engine/index.ts';
import { filled } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';
import { sample, stats } from './timing.ts';
import type { Timing } from './timing.ts';

interface BnCase { name: string; shape: [number, number, number, number] }

const RESNET18: BnCase[] = [
  { name: 'r18 32x64x32x32', shape: [32, 64, 32, 32] },
  { name: 'r18 32x128x16x16', shape: [32, 128, 16, 16] },
  { name: 'r18 32x256x8x8', shape: [32, 256, 8, 8] },
  { name: 'r18 32x512x4x4', shape: [32, 512, 4, 4] },
];
const SMALL: BnCase[] = [{ name: 'small 256x16x28x28', shape: [256, 16, 28, 28] }];


/**
 * Times `fn` against two bandwidth baselines moving the same bytes (read + write = `bytes`),
 * alternating: an element-wise compute kernel (relu over `bytes / 8` floats: one read, one write
 * each, the same dispatch path as our kernels), recorded as the baseline, and a plain buffer copy
 * (`engine().copy`, a copyBufferToBuffer; on lavapipe a memcpy, an upper bound no shader
 * reaches), returned as its own record. The copy ends the engine's compute pass, so it is
 * submitted and awaited on its own.
 */
async function versusCopy(name: string, op: string, bytes: number, fn: () => void, runs: number): Promise<BenchRecord[]> {
  const n = Math.ceil(bytes / 8 / 4) * 4;
  const src = Tensor.zeros([n]);
  const dst = Tensor.zeros([n]);
  const elementwise = () => scope(() => { relu(src); });
  const copy = () => engine().copy(src.buffer, 0, dst.buffer, 0, n * 4);
  const fns = [fn, elementwise, copy];
  for (const f of fns) await sample(f);
  const samples: number[][] = [[], [], []];
  for (let i = 0; i < runs; i++) for (const [k, f] of fns.entries()) samples[k].push(await sample(f));
  src.dispose();
  dst.dispose();
  const [t, e, b] = samples.map(stats);
  return [
    {
      case: name, op, ...t, gbps: bytes / (t.median_ms * 1e6),
      baseline: { system: 'element-wise kernel (relu), same bytes', median_ms: e.median_ms, gbps: (8 * n) / (e.median_ms * 1e6), ratio: e.median_ms / t.median_ms },
    },
    { case: `  buffer copy (copyBufferToBuffer), same bytes as ${op}`, op: 'buffer_copy', ...b, gbps: (8 * n) / (b.median_ms * 1e6) },
  ];
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const cases = opts.quick ? [RESNET18[0], SMALL[0]] : [...RESNET18, ...SMALL];
  const runs = opts.quick ? 3 : 7;
  const records: BenchRecord[] = [];
  for (const c of cases) {
    const C = c.shape[1];
    const x = filled(c.shape, 1);
    const dy = filled(c.shape, 2);
    const gamma = Tensor.full([C], 1.5);
    const beta = Tensor.full([C], 0.25);
    const runningMean = Tensor.zeros([C]);
    const runningVar = Tensor.full([C], 1);
    const nbt = Tensor.zeros([1], { dtype: 'i32' });
    const train = { training: true, runningMean, runningVar, numBatchesTracked: nbt };

    // Forward, training mode: statistics, running-stat update, normalize + affine.
    records.push(...await versusCopy(`bn_fwd train ${c.name}`, 'bn_fwd', 8 * x.size,
      () => scope(() => { batchNorm(x, gamma, beta, train); }), runs));

    // Backward alone: record one forward with x requiring grad, then call its tape node's
    // backward function (backwardReduce + backwardInput) repeatedly.
    x.requiresGrad = true;
    const y = batchNorm(x, gamma, beta, train);
    const node = y.node!;
    records.push(...await versusCopy(`bn_bwd ${c.name}`, 'bn_bwd', 12 * x.size,
      () => scope(() => { node.backward(dy); }), runs));
    x.requiresGrad = false;
    for (const t of [y, x, dy, gamma, beta, runningMean, runningVar, nbt]) t.dispose();
  }
  return records;
}
