// The training step's memory-bound kernels other than batch norm (bench/bn.ts) and quantization
// and the losses (bench/quant.ts): element-wise unary and binary ops (with and without
// broadcasting), reductions, global average pooling, the SGD step, the EMA update and the
// augmentation, in GB/s at the step's real sizes (bench/shapes.ts), each against a copy moving
// the same bytes, alternating (harness.ts versusCopy). Bytes are counted once: every input read
// plus every output written, 4 per f32 element (1 per u8 pixel), whatever passes a kernel makes:
//   relu                   read x, write y                     8 per element
//   reluBackward, add      read two, write one                12 per element
//   add (broadcast)        read x [N,C,H,W] and b [C,1,1], write y
//   sum over axes          read x, write the reduced tensor
//   globalAvgPool          forward read x, write [N,C]; backward read dy [N,C], write dx
//   SGD (momentum)         read p, g and the momentum, write p and the momentum: 20 per element
//   EMA                    read target and source, write target: 12 per element
//   augmentation           read the u8 pixels and 64 bytes of parameters per image, write the
//                          f32 view; the time includes drawing the parameters on the CPU
import { SGD, add, emaUpdate, globalAvgPool, relu, reluBackward, scope, sum } from '../engine/index.ts';
import { Augmenter } from '../ssql/data/augment.ts';
import { normalization } from '../ssql/train.ts';
import { backwardOf, filled, versusCopyAll } from './harness.ts';
import type { BandwidthCase, BenchOptions, BenchRecord } from './harness.ts';
import { STEPS, activationShapes, buildNet, disposeNet, shapeName } from './shapes.ts';
import type { StepSizes } from './shapes.ts';

async function activationCases(label: string, shape: number[], runs: number, only?: string): Promise<BenchRecord[]> {
  const [N, C] = shape;
  const n = shape.reduce((a, b) => a * b, 1);
  const x = filled(shape, 1);
  const other = filled(shape, 2);
  const bias = filled([C, 1, 1], 3);
  x.requiresGrad = true;
  const pooled = globalAvgPool(x);
  x.requiresGrad = false;
  const dPooled = filled([N, C], 4);
  const name = `${label} ${shapeName(shape)}`;
  const cases: BandwidthCase[] = [
    { name: `relu ${name}`, op: 'relu', bytes: 8 * n, fn: () => scope(() => { relu(x); }) },
    { name: `reluBackward ${name}`, op: 'relu_bwd', bytes: 12 * n, fn: () => scope(() => { reluBackward(other, x); }) },
    { name: `add ${name} + same`, op: 'add', bytes: 12 * n, fn: () => scope(() => { add(x, other); }) },
    { name: `add ${name} + ${C}x1x1 (broadcast)`, op: 'add_broadcast', bytes: 8 * n + 4 * C, fn: () => scope(() => { add(x, bias); }) },
    { name: `sum ${name} over N,H,W -> ${C}`, op: 'sum_axes', bytes: 4 * n + 4 * C, fn: () => scope(() => { sum(x, [0, 2, 3]); }) },
    { name: `sum ${name} over H,W -> ${N}x${C}`, op: 'sum_axes', bytes: 4 * n + 4 * N * C, fn: () => scope(() => { sum(x, [2, 3]); }) },
    { name: `sum ${name} over all`, op: 'sum_all', bytes: 4 * n + 4, fn: () => scope(() => { sum(x); }) },
    { name: `globalAvgPool fwd ${name}`, op: 'pool_fwd', bytes: 4 * n + 4 * N * C, fn: () => scope(() => { globalAvgPool(x); }) },
    { name: `globalAvgPool bwd ${name}`, op: 'pool_bwd', bytes: 4 * n + 4 * N * C, fn: backwardOf(pooled, dPooled) },
  ];
  const records = await versusCopyAll(cases, runs, only);
  for (const t of [pooled, dPooled, x, other, bias]) t.dispose();
  return records;
}

/** The bias gradient of the projector's linears: a sum over the batch. */
async function projectorSum(m: StepSizes, runs: number, only?: string): Promise<BenchRecord[]> {
  const x = filled([m.batch, m.projDim], 5);
  const records = await versusCopyAll([{
    name: `sum ${m.label} ${m.batch}x${m.projDim} over N -> ${m.projDim}`, op: 'sum_axes', bytes: 4 * x.size + 4 * m.projDim,
    fn: () => scope(() => { sum(x, 0); }),
  }], runs, only);
  x.dispose();
  return records;
}

/** SGD (momentum 0.9, weight decay 5e-4: docs/method.md#training-recipe) and an EMA over every
 * parameter of the model, as the step makes them (several parameters a dispatch). */
async function parameterCases(m: StepSizes, runs: number, only?: string): Promise<BenchRecord[]> {
  const net = buildNet(m);
  const params = net.parameters();
  const elements = params.reduce((n, p) => n + p.size, 0);
  params.forEach((p, i) => { p.grad = filled(p.shape, 100 + i); });
  const opt = new SGD(params, { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  const targets = params.map((p, i) => filled(p.shape, 1000 + i));
  const what = `${m.label}: ${params.length} parameters (${(elements / 1e6).toFixed(2)}M)`;
  const records = await versusCopyAll([
    { name: `SGD momentum step ${what}`, op: 'sgd', bytes: 20 * elements, fn: () => opt.step() },
    { name: `EMA update ${what}`, op: 'ema', bytes: 12 * elements, fn: () => emaUpdate(targets, params, 0.99) },
  ], runs, only);
  opt.zeroGrad();
  opt.dispose();
  for (const t of targets) t.dispose();
  disposeNet(net);
  return records;
}

/** One augmented view of a batch (the step makes two), as bench/train.ts's data. */
async function augmentCase(m: StepSizes, runs: number, only?: string): Promise<BenchRecord[]> {
  const { mean, std } = normalization(m.channels);
  const aug = new Augmenter({ channels: m.channels, height: m.size, width: m.size, mean, std, seed: 1 });
  const pixels = m.batch * m.channels * m.size * m.size;
  const images = Uint8Array.from({ length: pixels }, (_, i) => (i * 2654435761) >>> 24);
  const batch = aug.uploadBatch(images, m.batch);
  const records = await versusCopyAll([{
    name: `augment one view ${m.label} ${m.batch}x${m.channels}x${m.size}x${m.size} u8 -> f32`, op: 'augment',
    bytes: pixels + 64 * m.batch + 4 * pixels,
    fn: () => scope(() => { aug.views(batch); }),
  }], runs, only);
  batch.dispose();
  return records;
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const runs = opts.quick ? 3 : 7;
  const records: BenchRecord[] = [];
  for (const { model, shape } of activationShapes(opts.quick)) records.push(...await activationCases(model.label, shape, runs, opts.only));
  for (const m of STEPS) {
    records.push(...await projectorSum(m, runs, opts.only));
    records.push(...await parameterCases(m, runs, opts.only));
    records.push(...await augmentCase(m, runs, opts.only));
  }
  return records;
}
