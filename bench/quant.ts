// Fake quantization, the range observer and the losses in GB/s at the training step's real sizes
// (bench/shapes.ts), each against a copy moving the same bytes, alternating (harness.ts
// versusCopy). Bytes are counted once whatever the kernels' passes:
//   weight fake-quant      read w, write w_hat (8 bytes per element), per layer of the model;
//                          backward (with the gradient through the scale, as training runs it)
//                          read dy and w, write dw (12)
//   activation fake-quant  forward read x, write y (8); backward read dy and x, write dx (12)
//   min/max observer       read x (4)
//   cosine forward         read a and b (8 per element of one input); the [N] output is counted
//   SimSiam loss fwd+bwd   forward reads p and z (8), backward reads p and z, writes dp (12)
//   cross-entropy fwd+bwd  forward reads logits (4 per logit) and labels, backward reads both
//                          and writes the logits' gradient (8 per logit)
import { MinMaxObserver, Tensor, cosineSimilarity, crossEntropy, fakeQuantAct, fakeQuantWeight, scope, simsiamLoss } from '../engine/index.ts';
import { backwardOf, filled, versusCopyAll } from './harness.ts';
import type { BandwidthCase, BenchOptions, BenchRecord } from './harness.ts';
import { STEPS, activationShapes, buildNet, disposeNet, quantizedWeights, shapeName } from './shapes.ts';
import type { StepSizes } from './shapes.ts';

const BITS = 4;
/** The linear probe's batch and classes (ssql/eval.ts), where cross-entropy runs. */
const PROBE_BATCH = 256;
const CLASSES = 10;

/** Every quantized weight of the model once (what a quantized pass costs), and its largest. */
async function weightCases(m: StepSizes, runs: number, only?: string): Promise<BenchRecord[]> {
  const net = buildNet(m);
  const weights = quantizedWeights(net);
  const elements = weights.reduce((n, w) => n + w.size, 0);
  const largest = weights.reduce((a, b) => (b.size > a.size ? b : a));
  const dy = filled(largest.shape, 4);
  largest.requiresGrad = true;
  const y = fakeQuantWeight(largest, BITS, { scaleGrad: true });
  largest.requiresGrad = false;
  const records = await versusCopyAll([
    {
      name: `fakeQuantWeight ${m.label}: all ${weights.length} quantized weights (${(elements / 1e6).toFixed(2)}M), ${BITS} bit`,
      op: 'fake_quant_weight', bytes: 8 * elements,
      fn: () => scope(() => { for (const w of weights) fakeQuantWeight(w, BITS); }),
    },
    {
      name: `fakeQuantWeight ${m.label}: largest ${shapeName(largest.shape)}, ${BITS} bit`,
      op: 'fake_quant_weight', bytes: 8 * largest.size,
      fn: () => scope(() => { fakeQuantWeight(largest, BITS); }),
    },
    {
      name: `fakeQuantWeight bwd ${m.label}: largest ${shapeName(largest.shape)}, ${BITS} bit, scale gradient`,
      op: 'fake_quant_weight_bwd', bytes: 12 * largest.size, fn: backwardOf(y, dy),
    },
  ], runs, only);
  for (const t of [y, dy]) t.dispose();
  disposeNet(net);
  return records;
}

async function activationCases(label: string, shape: number[], runs: number, only?: string): Promise<BenchRecord[]> {
  const x = filled(shape, 2);
  const dy = filled(shape, 3);
  const observer = new MinMaxObserver();
  observer.observe(x);
  x.requiresGrad = true;
  const y = fakeQuantAct(x, BITS, observer);
  x.requiresGrad = false;
  const name = `${label} ${shapeName(shape)}`;
  const records = await versusCopyAll([
    // The observer accumulates: re-observing the same tensor leaves its range as it is.
    { name: `observe min/max ${name}`, op: 'observe_minmax', bytes: 4 * x.size, fn: () => observer.observe(x) },
    { name: `fakeQuantAct fwd ${name}, ${BITS} bit`, op: 'fake_quant_act_fwd', bytes: 8 * x.size, fn: () => scope(() => { fakeQuantAct(x, BITS, observer); }) },
    { name: `fakeQuantAct bwd ${name}`, op: 'fake_quant_act_bwd', bytes: 12 * x.size, fn: backwardOf(y, dy) },
  ], runs, only);
  for (const t of [y, x, dy]) t.dispose();
  observer.dispose();
  return records;
}

async function lossCases(m: StepSizes, runs: number, only?: string): Promise<BenchRecord[]> {
  const shape = [m.batch, m.projDim];
  const [N, D] = shape;
  const a = filled(shape, 4);
  const b = filled(shape, 5);
  const p = filled(shape, 6);
  p.requiresGrad = true;
  const name = `${m.label} ${shapeName(shape)}`;
  const cases: BandwidthCase[] = [
    { name: `cosine similarity fwd ${name}`, op: 'cosine_fwd', bytes: 8 * N * D + 4 * N, fn: () => scope(() => { cosineSimilarity(a, b, 1); }) },
    {
      name: `simsiam loss fwd+bwd ${name}`, op: 'simsiam_fwd_bwd', bytes: 20 * N * D,
      fn: () => scope(() => { simsiamLoss(p, b).backward(); p.grad?.dispose(); p.grad = null; }),
    },
  ];
  const records = await versusCopyAll(cases, runs, only);
  for (const t of [a, b, p]) t.dispose();
  return records;
}

async function crossEntropyCase(runs: number, only?: string): Promise<BenchRecord[]> {
  const logits = filled([PROBE_BATCH, CLASSES], 7);
  logits.requiresGrad = true;
  const labels = Tensor.fromArray(Int32Array.from({ length: PROBE_BATCH }, (_, i) => (i * 7) % CLASSES), [PROBE_BATCH], { dtype: 'i32' });
  const records = await versusCopyAll([{
    name: `crossEntropy fwd+bwd ${PROBE_BATCH}x${CLASSES} (linear probe batch)`, op: 'cross_entropy_fwd_bwd',
    bytes: 12 * PROBE_BATCH * CLASSES + 8 * PROBE_BATCH,
    fn: () => scope(() => { crossEntropy(logits, labels).backward(); logits.grad?.dispose(); logits.grad = null; }),
  }], runs, only);
  logits.dispose();
  labels.dispose();
  return records;
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const runs = opts.quick ? 3 : 7;
  const records: BenchRecord[] = [];
  for (const m of STEPS) records.push(...await weightCases(m, runs, opts.only));
  for (const { model, shape } of activationShapes(opts.quick)) records.push(...await activationCases(model.label, shape, runs, opts.only));
  for (const m of STEPS) records.push(...await lossCases(m, runs, opts.only));
  records.push(...await crossEntropyCase(runs, opts.only));
  return records;
}
