// Batch norm in training mode, forward (plain, and with the fused ReLU the blocks use) and
// backward, in GB/s at the training step's real sizes (bench/shapes.ts: every stage of the small
// ResNet at batch 64 and of the CIFAR ResNet-18 at batch 32, and the projector's BatchNorm1d),
// each against a copy moving the same bytes, alternating (harness.ts versusCopy).
// Also the fused op the ResNet blocks use (batch norm + residual + ReLU + activation observer or
// fake quantization, engine/ops/batchnorm.ts).
// Bytes are counted once whatever the kernels' passes: forward reads x and writes y (8 bytes
// per element), backward reads dy and x and writes dx (12 bytes per element); with a residual,
// forward also reads it (12) and backward reads it and writes its gradient (20); the
// per-channel vectors are negligible and not counted.
import { MinMaxObserver, Tensor, batchNorm, scope } from '../engine/index.ts';
import type { BatchNormOptions } from '../engine/index.ts';
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
  const residual = filled(shape, 3);
  const observer = new MinMaxObserver();
  observer.observe(x);
  const fused: BatchNormOptions = { ...train, relu: true, residual, act: { kind: 'quantize', observer, bits: 4 } };
  x.requiresGrad = true;
  residual.requiresGrad = true;
  const y = batchNorm(x, gamma, beta, train);
  const yFused = batchNorm(x, gamma, beta, fused);
  x.requiresGrad = false;
  residual.requiresGrad = false;
  // Backward computes dx only for an input that requires grad.
  const withGrad = (f: () => void) => () => {
    x.requiresGrad = true;
    residual.requiresGrad = true;
    try { f(); } finally { x.requiresGrad = false; residual.requiresGrad = false; }
  };
  const cases: BandwidthCase[] = [
    { name: `bn_fwd train ${name}`, op: 'bn_fwd', bytes: 8 * x.size, fn: () => scope(() => { batchNorm(x, gamma, beta, train); }) },
    { name: `bn_relu_fwd train ${name}`, op: 'bn_relu_fwd', bytes: 8 * x.size, fn: () => scope(() => { batchNorm(x, gamma, beta, { ...train, relu: true }); }) },
    { name: `bn_bwd ${name}`, op: 'bn_bwd', bytes: 12 * x.size, fn: withGrad(backwardOf(y, dy)) },
    {
      name: `bn_relu_observe_fwd train ${name}`, op: 'bn_relu_observe_fwd', bytes: 8 * x.size,
      fn: () => scope(() => { batchNorm(x, gamma, beta, { ...train, relu: true, act: { kind: 'observe', observer } }); }),
    },
    { name: `bn_add_relu_quant_fwd train ${name}`, op: 'bn_add_relu_quant_fwd', bytes: 12 * x.size, fn: () => scope(() => { batchNorm(x, gamma, beta, fused); }) },
    { name: `bn_add_relu_quant_bwd ${name}`, op: 'bn_add_relu_quant_bwd', bytes: 20 * x.size, fn: withGrad(backwardOf(yFused, dy)) },
  ];
  const records = await versusCopyAll(cases, runs, only);
  for (const t of [y, yFused, x, dy, residual, gamma, beta, runningMean, runningVar, numBatchesTracked]) t.dispose();
  observer.dispose();
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
