// The stem conv kernels (engine/ops/conv-stem.ts: forward, its flipped form, weight gradient)
// against float64 at several tiles: channel blocks past Cout and of every channel, maps whose
// width is not a multiple of 4 (a partial last strip, scalar rows) and whose width is (vec4
// rows), padding 0 to 2, the forward's rows split
// into chunks (a partial last one), the weight gradient's images split into chunks (a partial
// last one, and one chunk: no partial sums; a slab per invocation and per subgroup), 1 to 4
// input channels, 1x1 to 3x3 windows. The
// narrow forward (many input channels, 1 to 4 output channels) the same way, at its rule's
// chunks of rows and at chunks that do not divide the map (a partial last one), and its rolling
// walk at blocks of input channels that divide Cin and that do not (a partial last block).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../../engine/index.ts';
import { conv2dGeometry } from '../../engine/ops/conv.ts';
import type { ConvGeometry } from '../../engine/ops/conv.ts';
import { stemFits, stemForward, stemForwardTiles, stemNarrowFits, stemNarrowRollingFits, stemWeightGrad, stemWeightGradTiles } from '../../engine/ops/conv-stem.ts';
import type { StemTile } from '../../engine/ops/conv-stem.ts';
import { fixedSubgroupSize } from '../../engine/device.ts';
import { assertClose, randomArray } from '../helpers.ts';

/** out[n, co] = sum over (ci, kh, kw) of w(co, ci, kh, kw) * x[n, ci, oh + kh - pad, ow + kw - pad]. */
function forwardRef(x: Float64Array, w: (co: number, ci: number, kh: number, kw: number) => number, g: ConvGeometry): Float64Array {
  const y = new Float64Array(g.N * g.Cout * g.OH * g.OW);
  for (let n = 0; n < g.N; n++) for (let co = 0; co < g.Cout; co++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++) {
    let acc = 0;
    for (let ci = 0; ci < g.Cin; ci++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh - g.pad + i;
      const iw = ow - g.pad + j;
      if (ih < 0 || iw < 0 || ih >= g.H || iw >= g.W) continue;
      acc += x[((n * g.Cin + ci) * g.H + ih) * g.W + iw] * w(co, ci, i, j);
    }
    y[((n * g.Cout + co) * g.OH + oh) * g.OW + ow] = acc;
  }
  return y;
}

function weightGradRef(gy: Float64Array, x: Float64Array, g: ConvGeometry): Float64Array {
  const dw = new Float64Array(g.Cout * g.Cin * g.kH * g.kW);
  for (let n = 0; n < g.N; n++) for (let co = 0; co < g.Cout; co++) for (let oh = 0; oh < g.OH; oh++) for (let ow = 0; ow < g.OW; ow++) {
    const d = gy[((n * g.Cout + co) * g.OH + oh) * g.OW + ow];
    for (let ci = 0; ci < g.Cin; ci++) for (let i = 0; i < g.kH; i++) for (let j = 0; j < g.kW; j++) {
      const ih = oh - g.pad + i;
      const iw = ow - g.pad + j;
      if (ih < 0 || iw < 0 || ih >= g.H || iw >= g.W) continue;
      dw[((co * g.Cin + ci) * g.kH + i) * g.kW + j] += d * x[((n * g.Cin + ci) * g.H + ih) * g.W + iw];
    }
  }
  return dw;
}

// [name, input shape, weight shape, padding]
const cases: [string, number[], number[], number][] = [
  ['1->6 on 13x11, batch 3 (scalar rows, a partial strip)', [3, 1, 13, 11], [6, 1, 3, 3], 1],
  ['1->16 on 8x12, batch 2 (vec4 rows)', [2, 1, 8, 12], [16, 1, 3, 3], 1],
  ['1->20 on 28x28, batch 2 (the small ResNet stem, vec4 rows, a partial channel block)', [2, 1, 28, 28], [20, 1, 3, 3], 1],
  ['3->20 on 8x8, batch 3 (an RGB stem, vec4 rows)', [3, 3, 8, 8], [20, 3, 3, 3], 1],
  ['2->5 on 9x7, 2x2 window, padding 1', [2, 2, 9, 7], [5, 2, 2, 2], 1],
  ['4->7 on 6x8, padding 2 (a 10-wide output: scalar rows)', [2, 4, 6, 8], [7, 4, 3, 3], 2],
  ['1->12 on 6x10, padding 0 to an 8-wide output (scalar rows: the input is 10 wide)', [2, 1, 6, 10], [12, 1, 3, 3], 0],
  ['2->3 on 5x4, 1x1 window', [3, 2, 5, 4], [3, 2, 1, 1], 0],
  ['1->4 on 3x3, padding 2 (padding past the window)', [2, 1, 3, 3], [4, 1, 3, 3], 2],
];

/** Random input and weight, the weight also read as the [Cin, Cout, kH, kW] weight of another
 * conv (`wf`, the kernel's flipped form, which computes that conv's stride-1 input gradient), and
 * both forward results in float64. */
function forwardFixture(xs: number[], ws: number[], padding: number, seed: number) {
  const xd = randomArray(xs, seed);
  const wd = randomArray(ws, seed + 1);
  const x = Tensor.fromArray(xd, xs);
  const w = Tensor.fromArray(wd, ws);
  const g = conv2dGeometry(x, w, { padding });
  const tol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(g.Cin * g.kH * g.kW) };
  const kk = g.kH * g.kW;
  const yRef = forwardRef(xd, (co, ci, kh, kw) => wd[(co * g.Cin + ci) * kk + kh * g.kW + kw], g);
  const wf = Tensor.fromArray(wd, [g.Cin, g.Cout, g.kH, g.kW]);
  const yFlippedRef = forwardRef(xd, (co, ci, kh, kw) => wd[(ci * g.Cout + co) * kk + (g.kH - 1 - kh) * g.kW + (g.kW - 1 - kw)], g);
  return { xd, x, w, wf, g, tol, yRef, yFlippedRef };
}

// Extra tiles differ from the rule's only in their params (no pipeline to compile: SwiftShader
// takes seconds for each).
function forwardTilesFor(g: ConvGeometry): StemTile[] {
  const tiles = stemForwardTiles(g);
  return [...tiles, { R: tiles[tiles.length - 1].R, perChunk: 3 }, { R: tiles[0].R, perChunk: Math.max(1, g.OH - 1) }];
}

// Every tile both ways: a slab an invocation, and (where subgroups have a fixed size: 8 lanes on
// lavapipe, 4 in Chromium) a slab a subgroup, whose last subgroup has lanes past the work.
function weightGradTilesFor(g: ConvGeometry): StemTile[] {
  const tiles = stemWeightGradTiles(g).map(({ R, perChunk }) => ({ R, perChunk }));
  const all: StemTile[] = [...tiles, { R: tiles[tiles.length - 1].R, perChunk: 2 }, { R: tiles[0].R, perChunk: g.N }, { R: tiles[0].R, perChunk: 1 }];
  return fixedSubgroupSize() >= 4 ? [...all, ...all.map((t) => ({ ...t, subgroupSum: true }))] : all;
}

for (const [name, xs, ws, padding] of cases) {
  test(`conv2d.stem ${name}: forward, flipped forward and weight gradient at several tiles against float64`, async () => {
    const { xd, x, w, wf, g, tol, yRef, yFlippedRef } = forwardFixture(xs, ws, padding, 41);
    if (!stemFits(g)) throw new Error(`${name}: the stem kernels do not fit`);
    for (const t of forwardTilesFor(g)) {
      const y = stemForward(x, w, g, false, t);
      assertClose(await y.toArray(), yRef, tol, `${name} forward tile ${JSON.stringify(t)}`);
      y.dispose();
      if (t.R !== stemForwardTiles(g)[0].R) continue; // the flipped form with the first block only
      const yf = stemForward(x, wf, g, true, t);
      assertClose(await yf.toArray(), yFlippedRef, tol, `${name} flipped forward tile ${JSON.stringify(t)}`);
      yf.dispose();
    }
    const gys = [g.N, g.Cout, g.OH, g.OW];
    const gyd = randomArray(gys, 43);
    const gy = Tensor.fromArray(gyd, gys);
    const dwRef = weightGradRef(gyd, xd, g);
    const wgTol = { rtol: 1e-4, atol: 1e-5 * Math.sqrt(g.N * g.OH * g.OW) };
    for (const t of weightGradTilesFor(g)) {
      const dw = stemWeightGrad(gy, x, g, t);
      assertClose(await dw.toArray(), dwRef, wgTol, `${name} weight grad tile ${JSON.stringify(t)}`);
      dw.dispose();
    }
    for (const t of [x, w, wf, gy]) t.dispose();
  });
}

// [name, input shape, weight shape, padding]: the narrow forward's.
const narrowCases: [string, number[], number[], number][] = [
  ['16->1 on 28x28, batch 2 (the small ResNet stem\'s input gradient, vec4 rows)', [2, 16, 28, 28], [1, 16, 3, 3], 1],
  ['5->2 on 13x11, batch 3 (scalar rows, a partial strip)', [3, 5, 13, 11], [2, 5, 3, 3], 1],
  ['7->3 on 9x8, padding 0 to a 6-wide output (scalar rows)', [2, 7, 9, 8], [3, 7, 3, 3], 0],
  ['6->4 on 5x12, padding 2 (padding past the window, a 14-wide output)', [2, 6, 5, 12], [4, 6, 3, 3], 2],
  ['9->4 on 7x40, batch 2 (vec4 rows on two subgroups)', [2, 9, 7, 40], [4, 9, 3, 3], 1],
  ['5->3 on 4x37, padding 0 (scalar rows on two subgroups, the input wider than the output)', [2, 5, 4, 37], [3, 5, 3, 3], 0],
  ['6->3 on 1x3, 2x2 window', [2, 6, 1, 3], [3, 6, 2, 2], 1],
  ['5->1 on 3x5, 1x1 window', [3, 5, 3, 5], [1, 5, 1, 1], 0],
  ['20->1 on 6x12, batch 3 (vec4 rows, channel blocks with a partial last one)', [3, 20, 6, 12], [1, 20, 3, 3], 1],
  ['6->2 on 5x7, padding 2 (the walk storing from the first input row)', [2, 6, 5, 7], [2, 6, 3, 3], 2],
];

for (const [name, xs, ws, padding] of narrowCases) {
  test(`conv2d.stem narrow ${name}: forward and flipped forward at several chunks and blocks against float64`, async () => {
    const { x, w, wf, g, tol, yRef, yFlippedRef } = forwardFixture(xs, ws, padding, 51);
    if (!stemNarrowFits(g)) throw new Error(`${name}: the narrow kernel does not fit`);
    // The rule's chunk (or, where the kernel is not offered, 4 rows) and 3 (a partial last chunk).
    const chunks = [stemForwardTiles(g)[0]?.perChunk ?? Math.min(4, g.OH), 3].filter((rows, i, all) => rows <= g.OH && all.indexOf(rows) === i);
    // The rolling walk (where its padding fits): blocks of 4 and 8 channels (the tiles offered)
    // and of 3 (a partial last block wherever Cin is not a multiple of 3).
    const blocks = stemNarrowRollingFits(g) ? [4, 8, 3] : [];
    const tiles: StemTile[] = [...chunks.map((perChunk) => ({ R: g.Cout, perChunk, narrow: true })), ...blocks.map((perChunk) => ({ R: g.Cout, perChunk, narrow: true, rolling: true }))];
    for (const t of tiles) {
      const y = stemForward(x, w, g, false, t);
      assertClose(await y.toArray(), yRef, tol, `${name} narrow forward tile ${JSON.stringify(t)}`);
      y.dispose();
      const yf = stemForward(x, wf, g, true, t);
      assertClose(await yf.toArray(), yFlippedRef, tol, `${name} narrow flipped forward tile ${JSON.stringify(t)}`);
      yf.dispose();
    }
    for (const t of [x, w, wf]) t.dispose();
  });
}

test('conv2d.stem narrow: offered only where the stem kernels do not fit, for at most 4 output channels at stride 1', () => {
  const geometry = (xs: number[], ws: number[], stride = 1) => conv2dGeometry(Tensor.empty(xs), Tensor.empty(ws), { stride, padding: 1 });
  const stemInputGrad = geometry([2, 16, 28, 28], [1, 16, 3, 3]);
  assert.ok(stemForwardTiles(stemInputGrad).length > 0 && stemForwardTiles(stemInputGrad).every((t) => t.narrow), '16->1: narrow tiles');
  assert.is(stemWeightGradTiles(stemInputGrad).length, 0, '16->1: no stem weight gradient');
  assert.is(stemForwardTiles(geometry([2, 16, 8, 8], [5, 16, 3, 3])).length, 0, '16->5: no stem kernel');
  assert.is(stemForwardTiles(geometry([2, 16, 8, 8], [2, 16, 3, 3], 2)).length, 0, 'stride 2: no stem kernel');
  assert.ok(!stemForwardTiles(geometry([2, 3, 8, 8], [2, 3, 3, 3])).some((t) => t.narrow), '3->2: the rolling stem kernel');
  assert.ok(stemForwardTiles(stemInputGrad)[0].rolling, '16->1: the rolling walk first (the rule\'s pick)');
  const padPastWindow = conv2dGeometry(Tensor.empty([2, 6, 5, 7]), Tensor.empty([2, 6, 3, 3]), { padding: 3 });
  assert.ok(!stemNarrowRollingFits(padPastWindow), 'padding past kH - 1: no rolling walk');
});

test.run();
