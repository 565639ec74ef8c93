// Fake quantization and the cosine loss (GB/s), each against a plain buffer copy moving the
// same number of bytes, timed alternately in the same run (../shared/BENCH.md).
import { MinMaxObserver, Tensor, engine, fakeQuantAct, fakeQuantWeight, scope, simsiamLoss, cosineSimilarity } from '../engine/index.ts';
import { filled } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';
import { sample, stats } from './timing.ts';
import type { Timing } from './timing.ts';


/** Times `fn` and a copy of `bytes / 2` bytes (read + write = `bytes`), alternating. */
async function versusCopy(name: string, op: string, bytes: number, fn: () => void, runs: number): Promise<BenchRecord> {
  const n = Math.ceil(bytes / 8 / 4) * 4;
  const src = Tensor.zeros([n]);
  const dst = Tensor.zeros([n]);
  const copy = () => engine().copy(src.buffer, 0, dst.buffer, 0, n * 4);
  await sample(fn);
  await sample(copy);
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < runs; i++) {
    ours.push(await sample(fn));
    base.push(await sample(copy));
  }
  src.dispose();
  dst.dispose();
  const t = stats(ours);
  const b = stats(base);
  return {
    case: name, op, ...t, gbps: bytes / (t.median_ms * 1e6),
    baseline: { system: 'copy', median_ms: b.median_ms, gbps: (8 * n) / (b.median_ms * 1e6), ratio: b.median_ms / t.median_ms },
  };
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const runs = opts.quick ? 3 : 7;
  const records: BenchRecord[] = [];

  const w = filled([512, 512, 3, 3], 1);
  records.push(await versusCopy('fakeQuantWeight 512x512x3x3 (fused range + quantize), 4 bit', 'fake_quant_weight', 8 * w.size,
    () => scope(() => { fakeQuantWeight(w, 4); }), runs));
  w.dispose();

  const x = filled([32, 64, 32, 32], 2);
  const obs = new MinMaxObserver();
  records.push(await versusCopy('observe min/max 32x64x32x32', 'observe_minmax', 4 * x.size, () => obs.observe(x), runs));
  records.push(await versusCopy('fakeQuantAct 32x64x32x32, 4 bit', 'fake_quant_act', 8 * x.size,
    () => scope(() => { fakeQuantAct(x, 4, obs); }), runs));
  obs.dispose();
  x.dispose();

  const a = filled([512, 2048], 3);
  const b = filled([512, 2048], 4);
  records.push(await versusCopy('cosine similarity 512x2048 forward', 'cosine_fwd', 8 * a.size,
    () => scope(() => { cosineSimilarity(a, b, 1); }), runs));
  const pa = filled([512, 2048], 5);
  pa.requiresGrad = true;
  records.push(await versusCopy('simsiam loss 512x2048 forward + backward', 'simsiam_fwd_bwd', 20 * a.size,
    () => scope(() => { simsiamLoss(pa, b).backward(); pa.grad?.dispose(); pa.grad = null; }), runs));
  for (const t of [a, b, pa]) t.dispose();
  return records;
}
