// Batch norm in training mode, forward (plain, and with the fused ReLU the blocks use) and
// backward, in GB/s at the training step's real sizes (bench/shapes.ts: every stage of the small
// ResNet at batch 64 and of the CIFAR ResNet-18 at batch 32, and the projector's BatchNorm1d),
// each against a copy moving the same bytes, alternating (harness.ts versusCopy).
// Bytes are counted once whatever the kernels' passes: forward reads x and writes y (8 bytes
// per element), backward reads dy and x and writes dx (12 bytes per element); the per-channel
// vectors are negligible and not counted.
import { Tensor, batchNorm, scope } from '../engine/index.ts';
import { backwardOf, filled, versusCopyAll } from './harness.ts';
import type { BandwidthCase, BenchOptions, BenchRecord } from './harness.ts';
import { STEPS, activationShapes, shapeName } from './shapes.ts';

/** Times forward, forward + ReLU and backward of a training-mode batch norm over `shape`. */
async function bnCases(label: string, shape: number[], runs: number, only?: string): Promise<BenchRecord[]> {
  const C = shape[1];
  const x = filled(shape, 1);
  const dy = filled(shape, 2);
  const gamma = Tensor.full([C], 1.5);
  const beta = Tensor.full([C], 0.25);
  const runningMean = Tensor.zeros([C]);
  const runningVar = Tensor.full([C], 1);
  const numBatchesTracked = Tensor.zeros([1], { dtype: 'i32' });
  const train = { training: true, runningMean, runningVar, numBatchesTracked };
  const name = `${label} ${shapeName(shape)}`;
  x.requiresGrad = true;
  const y = batchNorm(x, gamma, beta, train);
  x.requiresGrad = false;
  const cases: BandwidthCase[] = [
    { name: `bn_fwd train ${name}`, op: 'bn_fwd', bytes: 8 * x.size, fn: () => scope(() => { batchNorm(x, gamma, beta, train); }) },
    { name: `bn_relu_fwd train ${name}`, op: 'bn_relu_fwd', bytes: 8 * x.size, fn: () => scope(() => { batchNorm(x, gamma, beta, { ...train, relu: true }); }) },
    { name: `bn_bwd ${name}`, op: 'bn_bwd', bytes: 12 * x.size, fn: backwardOf(y, dy) },
  ];
  const records = await versusCopyAll(cases, runs, only);
  for (const t of [y, x, dy, gamma, beta, runningMean, runningVar, numBatchesTracked]) t.dispose();
  return records;
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const runs = opts.quick ? 3 : 7;
  const records: BenchRecord[] = [];
  for (const { model, shape } of activationShapes(opts.quick)) records.push(...await bnCases(model.label, shape, runs, opts.only));
  if (!opts.quick) {
    for (const m of STEPS) records.push(...await bnCases(`${m.label} projector`, [m.batch, m.projDim], runs, opts.only));
  }
  return records;
}
