// The unrolled conv kernel (engine/ops/conv-unrolled.ts) against float64: forward at several
// tiles (channel blocks past Cout, partial pixel tiles, several workgroups, strides, 1x1 and 5x5
// windows, narrow maps; weight vec4s per channel not a multiple of the 4 a subgroup load
// takes), and the stride-1 input gradient through the flipped weight.
import { test } from 'uvu';
import { Tensor } from '../../engine/index.ts';
import { conv2dGeometry } from '../../engine/ops/conv.ts';
import type { ConvGeometry } from '../../engine/ops/conv.ts';
import { unrolledForward, unrolledMaxSubgroup, unrolledTile } from '../../engine/ops/conv-unrolled.ts';
import type { UnrolledTile } from '../../engine/ops/conv-unrolled.ts';
import { assertClose, randomArray } from '../helpers.ts';

/** float64 conv of x [N, Cin, H, W] at geometry g, the weight given as w(co, ci, i, j). */
function convRef(x: Float64Array, w: (co: number, ci: number, i: number, j: number) => number, g: ConvGeometry): Float64Array {
  const y = new Float64Array(g.N * g.Cout * g.OH * g.OW);
  for (let n = 0; n < g.N; n++) for (let co = 0; co < g.Cout; co++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++) {
    let acc = 0;
    for (let ci = 0; ci < g.Cin; ci++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh * g.stride - g.pad + i;
      const iw = ow * g.stride - g.pad + j;
      if (ih < 0 || iw < 0 || ih >= g.H || iw >= g.W) continue;
      acc += x[((n * g.Cin + ci) * g.H + ih) * g.W + iw] * w(co, ci, i, j);
    }
    y[((n * g.Cout + co) * g.OH + oh) * g.OW + ow] = acc;
  }
  return y;
}

// [name, input shape, weight shape, stride, padding]
const cases: [string, number[], number[], number, number][] = [
  ['3x3 s1 p1, 70->20 on 9x11, batch 2', [2, 70, 9, 11], [20, 70, 3, 3], 1, 1],
  ['3x3 s1 p1, 1->16 on 14x14, batch 3 (stem, several workgroups)', [3, 1, 14, 14], [16, 1, 3, 3], 1, 1],
  ['3x3 s2 p1, 6->10 on 9x8', [2, 6, 9, 8], [10, 6, 3, 3], 2, 1],
  ['3x3 s1 p1 on a 3x2 map, 9->5', [2, 9, 3, 2], [5, 9, 3, 3], 1, 1],
  ['3x3 s1 p1 on a 1x1 map, 4->3', [3, 4, 1, 1], [3, 4, 3, 3], 1, 1],
  ['5x5 s1 p2, 3->2 on 7x6', [1, 3, 7, 6], [2, 3, 5, 5], 1, 2],
  ['1x1 s2 p0, 12->8 on 7x7', [2, 12, 7, 7], [8, 12, 1, 1], 2, 0],
  ['3x3 s1 p1, 6->40 on 7x7, batch 3 (channel blocks past Cout in a workgroup of several)', [3, 6, 7, 7], [40, 6, 3, 3], 1, 1],
  ['3x3 s2 p1, 5->20 on 13x13', [2, 5, 13, 13], [20, 5, 3, 3], 2, 1],
];

function tilesFor(g: ConvGeometry): UnrolledTile[] {
  const rule = unrolledTile(g);
  // Also whole-row tiles whose last vec4 of pixels is padded (4 x 7, 2 x 3), and workgroups of
  // several channel blocks (PT 16 or 32 pixel tiles), where the subgroups allow them.
  const others: UnrolledTile[] = [{ R: 4, TR: 1, TC: 4 }, { R: 12, TR: 4, TC: 1 }, { R: 16, TR: 4, TC: 4 }, { R: 8, TR: 4, TC: 7, PT: 16 }, { R: 16, TR: 2, TC: 3, PT: 32 }];
  return [rule, ...others.filter((t) => (g.Cout > 4 || t.R <= 4) && (t.PT ?? 64) >= unrolledMaxSubgroup())].map((t) => (g.Cout <= 4 ? { ...t, R: g.Cout } : t));
}

for (const [name, xs, ws, stride, padding] of cases) {
  test(`conv2d.unrolled ${name}: forward and flipped (input gradient) at several tiles against float64`, async () => {
    const xd = randomArray(xs, 21);
    const wd = randomArray(ws, 22);
    const x = Tensor.fromArray(xd, xs);
    const w = Tensor.fromArray(wd, ws);
    const g = conv2dGeometry(x, w, { stride, padding });
    const [Co, Ci, kh, kw] = ws;
    const wAt = (co: number, ci: number, i: number, j: number) => wd[((co * Ci + ci) * kh + i) * kw + j];
    const expected = convRef(xd, wAt, g);
    const tol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(g.Cin * kh * kw) };
    for (const t of tilesFor(g)) {
      const y = unrolledForward(x, w, g, false, t);
      assertClose(await y.toArray(), expected, tol, `${name} forward tile ${t.R}x${t.TR}x${t.TC} pt${t.PT ?? 64}`);
      y.dispose();
    }
    if (stride === 1 && padding <= kh - 1 && kh === kw) {
      // dX = conv(dY, flipped W) with padding k-1-pad; the reference sums dY x W directly.
      const gys = [g.N, Co, g.OH, g.OW];
      const gyd = randomArray(gys, 23);
      const gy = Tensor.fromArray(gyd, gys);
      const gt: ConvGeometry = { ...g, Cin: g.Cout, Cout: g.Cin, H: g.OH, W: g.OW, OH: g.H, OW: g.W, pad: g.kH - 1 - g.pad };
      const dxRef = convRef(gyd, (ci, co, i, j) => wAt(co, ci, kh - 1 - i, kw - 1 - j), gt);
      for (const t of tilesFor(gt)) {
        const dx = unrolledForward(gy, w, gt, true, t);
        assertClose(await dx.toArray(), dxRef, { rtol: 1e-4, atol: 1e-5 * Math.sqrt(Co * kh * kw) }, `${name} flipped tile ${t.R}x${t.TR}x${t.TC} pt${t.PT ?? 64}`);
        dx.dispose();
      }
      gy.dispose();
    }
    x.dispose();
    w.dispose();
  });
}

test.run();
