// The unrolled transposed-conv input-gradient kernel (engine/ops/conv-unrolled-inputgrad.ts)
// against float64 at several tiles: strides 2 and 3, paddings 0 to 2 (and past the window),
// 1x1, 2x2 (windows under the stride: phases no tap reaches), 3x3 and 5x5 windows, channel
// blocks past Cin and of every channel (Cin <= 4), partial block tiles at odd map sizes, several
// workgroups, batches over 1. Outputs are poisoned, so a pixel never written fails.
import { test } from 'uvu';
import { Tensor } from '../../engine/index.ts';
import { conv2dGeometry } from '../../engine/ops/conv.ts';
import type { ConvGeometry } from '../../engine/ops/conv.ts';
import { unrolledInputGrad, unrolledInputGradTile } from '../../engine/ops/conv-unrolled-inputgrad.ts';
import { unrolledMaxSubgroup } from '../../engine/ops/conv-unrolled.ts';
import type { UnrolledInputGradTile } from '../../engine/ops/conv-unrolled-inputgrad.ts';
import { assertClose, randomArray, throwsWith } from '../helpers.ts';

/** dL/dX of conv2d for dL/dY = gy, in float64 (the scatter of every dY value over its window). */
function inputGradRef(gy: Float64Array, w: Float64Array, g: ConvGeometry): Float64Array {
  const dx = new Float64Array(g.N * g.Cin * g.H * g.W);
  for (let n = 0; n < g.N; n++) for (let co = 0; co < g.Cout; co++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++) {
    const d = gy[((n * g.Cout + co) * g.OH + oh) * g.OW + ow];
    for (let ci = 0; ci < g.Cin; ci++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh * g.stride - g.pad + i;
      const iw = ow * g.stride - g.pad + j;
      if (ih < 0 || iw < 0 || ih >= g.H || iw >= g.W) continue;
      dx[((n * g.Cin + ci) * g.H + ih) * g.W + iw] += d * w[((co * g.Cin + ci) * g.kH + i) * g.kW + j];
    }
  }
  return dx;
}

// [name, input shape, weight shape, stride, padding]
const cases: [string, number[], number[], number, number][] = [
  ['3x3 s2 p1, 10->6 on 13x15, batch 3', [3, 10, 13, 15], [6, 10, 3, 3], 2, 1],
  ['3x3 s2 p0, 5->7 on 11x9, batch 2', [2, 5, 11, 9], [7, 5, 3, 3], 2, 0],
  ['3x3 s2 p2, 3->4 on 7x10', [1, 3, 7, 10], [4, 3, 3, 3], 2, 2],
  ['3x3 s3 p1, 6->5 on 11x13, batch 2', [2, 6, 11, 13], [5, 6, 3, 3], 3, 1],
  ['3x3 s3 p0, 9->3 on 10x8', [1, 9, 10, 8], [3, 9, 3, 3], 3, 0],
  ['1x1 s2 p0 (downsample), 6->9 on 7x7, batch 2', [2, 6, 7, 7], [9, 6, 1, 1], 2, 0],
  ['2x2 s3 p1 (window under the stride), 4->6 on 9x11', [1, 4, 9, 11], [6, 4, 2, 2], 3, 1],
  ['5x5 s3 p0, 2->4 on 13x11, batch 2', [2, 2, 13, 11], [4, 2, 5, 5], 3, 0],
  ['3x3 s1 p2 (padding past the window), 5->3 on 6x7, batch 2', [2, 5, 6, 7], [3, 5, 3, 3], 1, 2],
  ['3x3 s2 p1 to a 1x1 output, 7->5 on 2x1', [2, 7, 2, 1], [5, 7, 3, 3], 2, 1],
  ['3x3 s2 p1, 16->32 on 28x28, batch 2 (small ResNet stage 2, several workgroups)', [2, 16, 28, 28], [32, 16, 3, 3], 2, 1],
  ['3x3 s2 p1, 40->12 on 7x7, batch 3 (channel blocks past Cin in workgroups of several)', [3, 40, 7, 7], [12, 40, 3, 3], 2, 1],
];

/** The rule's tile and others: one block, channel blocks past Cin (8 and 12 of 10), several
 * block rows and columns, workgroups of 16 pixel tiles and 4 channel blocks (where subgroups
 * allow); smaller at stride 3 (9 accumulators a block: the big bodies compile slowly on
 * SwiftShader). */
function tilesFor(g: ConvGeometry): UnrolledInputGradTile[] {
  const rule = unrolledInputGradTile(g);
  const others: UnrolledInputGradTile[] = g.stride >= 3
    ? [{ R: 4, TR: 1, TC: 1 }, { R: 8, TR: 2, TC: 1, PT: 16 }, { R: 12, TR: 1, TC: 2 }]
    : [{ R: 4, TR: 1, TC: 1 }, { R: 8, TR: 2, TC: 3, PT: 16 }, { R: 12, TR: 3, TC: 1 }];
  return [rule, ...others.filter((t) => (t.PT ?? 64) >= unrolledMaxSubgroup()).map((t) => (g.Cin <= 4 ? { ...t, R: g.Cin } : t))];
}

for (const [name, xs, ws, stride, padding] of cases) {
  test(`conv2d.unrolled.inputGrad ${name}: several tiles against float64`, async () => {
    const wd = randomArray(ws, 41);
    const w = Tensor.fromArray(wd, ws);
    const x = Tensor.empty(xs);
    const g = conv2dGeometry(x, w, { stride, padding });
    x.dispose();
    const gys = [g.N, g.Cout, g.OH, g.OW];
    const gyd = randomArray(gys, 42);
    const gy = Tensor.fromArray(gyd, gys);
    const expected = inputGradRef(gyd, wd, g);
    const tol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(g.Cout * g.kH * g.kW) };
    for (const t of tilesFor(g)) {
      const dx = unrolledInputGrad(gy, w, g, t);
      assertClose(await dx.toArray(), expected, tol, `${name} tile ${t.R}x${t.TR}x${t.TC} pt${t.PT ?? 64}`);
      dx.dispose();
    }
    gy.dispose();
    w.dispose();
  });
}

test('conv2d.unrolled.inputGrad: a channel block neither a multiple of 4 nor every channel is refused', () => {
  const w = Tensor.empty([3, 6, 3, 3]);
  const x = Tensor.empty([1, 6, 5, 5]);
  const g = conv2dGeometry(x, w, { stride: 2, padding: 1 });
  const gy = Tensor.empty([1, 3, g.OH, g.OW]);
  try {
    throwsWith(() => unrolledInputGrad(gy, w, g, { R: 2, TR: 1, TC: 1 }), /conv2d\.unrolled\.inputGrad/, /2 channels/, /all 6 input channels/);
  } finally {
    for (const t of [w, x, gy]) t.dispose();
  }
});

test.run();
