// Matmul throughput (GFLOP/s) at square and non-square shapes, and at the training step's
// projector and predictor products (each linear layer's forward x Wᵀ, input gradient g W and
// weight gradient gᵀ x, at bench/shapes.ts's batch and widths).
import { matmul, scope } from '../engine/index.ts';
import type { MatmulOptions } from '../engine/index.ts';
import { filled, time } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';
import { STEPS } from './shapes.ts';

interface MatmulCase { name: string; a: number[]; b: number[]; opts: MatmulOptions; flops: number }

function squareCases(quick: boolean): MatmulCase[] {
  const shapes: [number, number, number, string][] = quick
    ? [[256, 256, 256, ''], [512, 512, 512, '']]
    : [[256, 256, 256, ''], [512, 512, 512, ''], [1024, 1024, 1024, ''], [4096, 512, 256, ' (non-square)'], [1000, 1000, 1000, ' (odd)']];
  const cases: MatmulCase[] = [];
  for (const [M, K, N, note] of shapes) {
    for (const transA of [false, true]) {
      if (transA && M !== 1024 && !quick) continue;
      cases.push({
        name: `matmul ${M}x${K} @ ${K}x${N}${transA ? ' (A transposed)' : ''}${note}`,
        a: transA ? [K, M] : [M, K], b: [K, N], opts: { transA }, flops: 2 * M * N * K,
      });
    }
  }
  return cases;
}

/** The three products of a linear layer [batch, inF] -> [batch, outF] in training. */
function linearCases(label: string, batch: number, inF: number, outF: number): MatmulCase[] {
  const flops = 2 * batch * inF * outF;
  return [
    { name: `matmul ${label} x Wᵀ ${batch}x${inF} @ (${outF}x${inF})ᵀ`, a: [batch, inF], b: [outF, inF], opts: { transB: true }, flops },
    { name: `matmul ${label} g W ${batch}x${outF} @ ${outF}x${inF}`, a: [batch, outF], b: [outF, inF], opts: {}, flops },
    { name: `matmul ${label} gᵀ x (${batch}x${outF})ᵀ @ ${batch}x${inF}`, a: [batch, outF], b: [batch, inF], opts: { transA: true }, flops },
  ];
}

/** The projector's hidden layer (projDim -> projDim) and the predictor's two (its bottleneck). */
function stepCases(quick: boolean): MatmulCase[] {
  return (quick ? STEPS.slice(0, 1) : STEPS).flatMap((m) => [
    ...linearCases(m.label, m.batch, m.projDim, m.projDim),
    ...linearCases(m.label, m.batch, m.projDim, m.predHidden),
    ...linearCases(m.label, m.batch, m.predHidden, m.projDim),
  ]);
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const cases = [...squareCases(opts.quick), ...stepCases(opts.quick)].filter((c) => opts.only === undefined || c.name.includes(opts.only));
  const records: BenchRecord[] = [];
  for (const c of cases) {
    const a = filled(c.a, 1);
    const b = filled(c.b, 2);
    const t = await time(() => scope(() => { matmul(a, b, c.opts); }), opts.quick ? 3 : 5);
    records.push({ case: c.name, op: 'matmul', ...t, gflops: c.flops / (t.median_ms * 1e6) });
    a.dispose();
    b.dispose();
  }
  return records;
}
