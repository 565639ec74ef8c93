// The unrolled conv weight-gradient kernel (engine/ops/conv-unrolled-weightgrad.ts) against
// float64 at several tiles: channel blocks past Cout (12 of 20) and of every channel (Cout <= 4),
// 1 to 4 pixels a step with partial last steps, the rows summed whole or split into chunks (with
// a partial last chunk), looped a step a turn or unrolled whole several rows a turn (with a
// partial last turn), workgroups of 4 to 64 input channels with partial ones, strides,
// padding past the window, 1x1 and 5x5 windows, narrow maps. In the browser suite (SwiftShader:
// slow compiles) the extra tiles run on three of the cases, the rule's tile on all.
import { test } from 'uvu';
import { Tensor } from '../../engine/index.ts';
import { conv2dGeometry } from '../../engine/ops/conv.ts';
import type { ConvGeometry } from '../../engine/ops/conv.ts';
import { unrolledWeightGrad, unrolledWeightGradTile } from '../../engine/ops/conv-unrolled-weightgrad.ts';
import type { UnrolledWeightGradTile } from '../../engine/ops/conv-unrolled-weightgrad.ts';
import { assertClose, randomArray, slowPipelineCompiles } from '../helpers.ts';

function weightGradRef(gy: Float64Array, x: Float64Array, g: ConvGeometry): Float64Array {
  const dw = new Float64Array(g.Cout * g.Cin * g.kH * g.kW);
  for (let n = 0; n < g.N; n++) for (let co = 0; co < g.Cout; co++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++) {
    const d = gy[((n * g.Cout + co) * g.OH + oh) * g.OW + ow];
    for (let ci = 0; ci < g.Cin; ci++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh * g.stride - g.pad + i;
      const iw = ow * g.stride - g.pad + j;
      if (ih < 0 || iw < 0 || ih >= g.H || iw >= g.W) continue;
      dw[((co * g.Cin + ci) * g.kH + i) * g.kW + j] += d * x[((n * g.Cin + ci) * g.H + ih) * g.W + iw];
    }
  }
  return dw;
}

// [name, input shape, weight shape, stride, padding]
const cases: [string, number[], number[], number, number][] = [
  ['3x3 s1 p1, 70->20 on 9x11, batch 2', [2, 70, 9, 11], [20, 70, 3, 3], 1, 1],
  ['3x3 s1 p1, 1->16 on 14x14, batch 3 (stem)', [3, 1, 14, 14], [16, 1, 3, 3], 1, 1],
  ['3x3 s2 p1, 6->10 on 9x8', [2, 6, 9, 8], [10, 6, 3, 3], 2, 1],
  ['3x3 s1 p1 on a 3x2 map, 9->5', [2, 9, 3, 2], [5, 9, 3, 3], 1, 1],
  ['3x3 s1 p1 on a 1x1 map, 4->3', [3, 4, 1, 1], [3, 4, 3, 3], 1, 1],
  ['3x3 s1 p2, 5->3 on 6x7 (3 channels a lane, several pixels a step)', [2, 5, 6, 7], [3, 5, 3, 3], 1, 2],
  ['3x3 s1 p2 (padding past the window), 5->7 on 6x7', [2, 5, 6, 7], [7, 5, 3, 3], 1, 2],
  ['5x5 s3 p0, 2->6 on 13x11', [2, 2, 13, 11], [6, 2, 5, 5], 3, 0],
  ['1x1 s2 p0, 12->8 on 7x7', [2, 12, 7, 7], [8, 12, 1, 1], 2, 0],
];

/** The cases whose extra tiles also run where compiles are slow (slowPipelineCompiles): 3x3 at
 * stride 1 with channel blocks past Cout, at stride 2, and with blocks of every channel (29
 * distinct pipelines instead of 61 in the browser). */
const sweptEverywhere = new Set([0, 2, 5]);

function tilesFor(g: ConvGeometry, sweep: boolean): UnrolledWeightGradTile[] {
  const rule = unrolledWeightGradTile(g);
  if (!sweep) return [rule];
  const others: UnrolledWeightGradTile[] = [
    // The rule with and without whole rows unrolled (each adapter's rule picks one).
    unrolledWeightGradTile(g, !rule.rowsPerTurn),
    { R: 4, PX: 1, chunks: 1, WG: 4 },
    { R: 12, PX: Math.min(3, g.OW), chunks: 5, WG: 64 },
    { R: 16, PX: Math.min(4, g.OW), chunks: 2, WG: 16 },
    // Whole rows unrolled, several a turn with a partial last turn in a chunk.
    { R: 8, PX: Math.min(4, g.OW), chunks: 3, WG: 16, rowsPerTurn: 4 },
    { R: 16, PX: Math.min(2, g.OW), chunks: 1, WG: 4, rowsPerTurn: 5 },
    { R: 4, PX: Math.min(3, g.OW), chunks: 2, WG: 64, rowsPerTurn: 1 },
    // fma() multiply-adds, looped and unrolled; each input column of a row loaded once.
    { R: 8, PX: Math.min(4, g.OW), chunks: 2, WG: 16, fma: true },
    { R: 8, PX: Math.min(3, g.OW), chunks: 3, WG: 4, rowsPerTurn: 2, fma: true, shareColumns: true },
    { R: 4, PX: Math.min(2, g.OW), chunks: 1, WG: 16, rowsPerTurn: 2, shareColumns: true },
  ];
  return [rule, ...others].map((t) => (g.Cout <= 4 ? { ...t, R: g.Cout } : t));
}

for (const [index, [name, xs, ws, stride, padding]] of cases.entries()) {
  test(`conv2d.unrolled.weightGrad ${name}: several tiles against float64`, async () => {
    const xd = randomArray(xs, 31);
    const x = Tensor.fromArray(xd, xs);
    const w = Tensor.empty(ws);
    const g = conv2dGeometry(x, w, { stride, padding });
    w.dispose();
    const gys = [g.N, g.Cout, g.OH, g.OW];
    const gyd = randomArray(gys, 32);
    const gy = Tensor.fromArray(gyd, gys);
    const expected = weightGradRef(gyd, xd, g);
    const tol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(g.N * g.OH * g.OW) };
    for (const t of tilesFor(g, sweptEverywhere.has(index) || !slowPipelineCompiles())) {
      const dw = unrolledWeightGrad(gy, x, g, t);
      assertClose(await dw.toArray(), expected, tol, `${name} tile ${JSON.stringify(t)}`);
      dw.dispose();
    }
    x.dispose();
    gy.dispose();
  });
}

test.run();
