// conv2d against float64 references: the default path with finite-difference gradients on
// awkward shapes, then every kernel design and tile the op can choose (subgroup where the
// adapter has subgroups of 8, with both its 8-lane and its 4-lane code; unrolled, register,
// workgroup memory) forced in turn, with forward, input
// gradient and weight gradient each checked against an exact float64 reference on shapes that
// reach their edge cases: channel blocks past Cout, several workgroups, one input or output
// channel, split sums, strides, narrow maps.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SGD, Tensor, clearTuning, engine, forceVariant, loadTuningTable, scope, setTuning, tunePending, tuningTable } from '../../engine/index.ts';
import { TUNING_MARGIN } from '../../engine/tuning.ts';
import { conv2d, conv2dGeometry, conv2dInputGrad, conv2dVariants, conv2dWeightGrad } from '../../engine/ops/conv.ts';
import type { ConvGeometry } from '../../engine/ops/conv.ts';
import { forceSubgroupConvLanes, subgroupConvOffered, subgroupConvSize } from '../../engine/ops/conv-subgroup.ts';
import { pointwiseWeightGrad } from '../../engine/ops/conv-pointwise.ts';
import { assertClose, gradCheck, noLeaks, randomArray } from '../helpers.ts';

/** float64 reference conv2d, NCHW, weight [Cout, Cin, kH, kW]. */
function convRef(x: Float64Array, w: Float64Array, b: Float64Array | null, xs: number[], ws: number[], s: number, p: number): Float64Array {
  const [N, C, H, W] = xs;
  const [Co, , kh, kw] = ws;
  const OH = Math.floor((H + 2 * p - kh) / s) + 1;
  const OW = Math.floor((W + 2 * p - kw) / s) + 1;
  const y = new Float64Array(N * Co * OH * OW);
  for (let n = 0; n < N; n++) for (let co = 0; co < Co; co++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let acc = b ? b[co] : 0;
    for (let ci = 0; ci < C; ci++) for (let i = 0; i < kh; i++) for (let j = 0; j < kw; j++) {
      const ih = oh * s - p + i;
      const iw = ow * s - p + j;
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      acc += x[((n * C + ci) * H + ih) * W + iw] * w[((co * C + ci) * kh + i) * kw + j];
    }
    y[((n * Co + co) * OH + oh) * OW + ow] = acc;
  }
  return y;
}

// Awkward shapes: odd spatial sizes, channels not multiples of 4, batch 1, stride 2 on odd
// input, 1x1 (the matmul path and the strided kernel path) and 7x7.
const cases: [string, number[], number[], number, number, boolean][] = [
  ['3x3 s1 p1, batch 2, 3->5 on 7x9', [2, 3, 7, 9], [5, 3, 3, 3], 1, 1, true],
  ['3x3 s2 p1, batch 1, odd 9x7', [1, 5, 9, 7], [3, 5, 3, 3], 2, 1, false],
  ['1x1 s1 (matmul path), 6->9', [2, 6, 5, 3], [9, 6, 1, 1], 1, 0, true],
  ['1x1 s2 (downsample), 6->4 on 7x7', [2, 6, 7, 7], [4, 6, 1, 1], 2, 0, false],
  ['7x7 s2 p3, 2->3 on 11x11', [1, 2, 11, 11], [3, 2, 7, 7], 2, 3, false],
  ['3x3 s1 p0, 17 channels out, 13 pixels wide', [1, 2, 3, 13], [17, 2, 3, 3], 1, 0, true],
  // Narrow outputs take narrow forward tiles (2 and 1 columns wide).
  ['3x3 s2 p1 to a 2x2 output', [2, 3, 3, 4], [5, 3, 3, 3], 2, 1, false],
  ['3x3 s1 p0 to a 1x1 output, 9 channels in', [3, 9, 3, 3], [4, 9, 3, 3], 1, 0, true],
  // One input channel (an image stem), one output channel.
  ['3x3 s1 p1, 1 channel in (stem)', [2, 1, 6, 9], [6, 1, 3, 3], 1, 1, false],
  ['3x3 s1 p1, 1 channel out', [2, 5, 5, 6], [1, 5, 3, 3], 1, 1, false],
];

for (const [name, xs, ws, stride, padding, withBias] of cases) {
  test(`conv2d ${name}: forward, input grad, weight grad${withBias ? ', bias grad' : ''}`, async () => {
    await gradCheck({
      name: `conv2d ${name}`,
      shapes: withBias ? [xs, ws, [ws[0]]] : [xs, ws],
      gpu: (x, w, b) => conv2d(x, w, b ?? null, { stride, padding }),
      cpu: (x, w, b) => convRef(x, w, b ?? null, xs, ws, stride, padding),
    });
  });
}

/** dL/dX of conv2d for dL/dY = gy, in float64. */
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

/** dL/dW of conv2d for dL/dY = gy, in float64. */
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

// Shapes for the designs: [name, input shape, weight shape, stride, padding].
const designCases: [string, number[], number[], number, number][] = [
  // 70 channels in: a 64-wide weight-gradient workgroup and a partial one; 20 out: a partial
  // 16-channel block; 2 x 9 x 11: 3 rows of 4-pixel tiles with a partial last one, split sums;
  // forward tiles 6 wide, the second one past the edge.
  ['3x3 s1 p1, 70->20 on 9x11, batch 2', [2, 70, 9, 11], [20, 70, 3, 3], 1, 1],
  // Over 64 pixel tiles (several workgroups along the pixels); 1 channel in.
  ['3x3 s1 p1, 1->16 on 14x14, batch 3 (stem)', [3, 1, 14, 14], [16, 1, 3, 3], 1, 1],
  ['3x3 s2 p1, 6->10 on 9x8', [2, 6, 9, 8], [10, 6, 3, 3], 2, 1],
  // A map 12 wide: input rows read and outputs stored as vec4s, 3 tiles across, a partial row
  // of tiles; padding 0 puts the window at the start of its vec4.
  ['3x3 s1 p1, 5->6 on 5x12', [2, 5, 5, 12], [6, 5, 3, 3], 1, 1],
  ['3x3 s1 p0, 3->5 on 6x12', [1, 3, 6, 12], [5, 3, 3, 3], 1, 0],
  // Its input gradient, a flipped forward with padding 2, reads an 8-wide map.
  ['3x3 s1 p0, 4->6 on 5x10', [2, 4, 5, 10], [6, 4, 3, 3], 1, 0],
  // A 14-wide map read as vec2s at stride 2 (an odd-width output stored as scalars); the forward's
  // tiles a whole 7-wide output row (a partial 4-pixel accumulator, 5 channels in a block of 8).
  ['3x3 s2 p1, 6->5 on 5x14', [2, 6, 5, 14], [5, 6, 3, 3], 2, 1],
  // Blocks of 32 output channels (the second mostly past Cout) and 2x8 tiles, two across a
  // 16-wide map with a partial row of tiles, at strides 1 and 2.
  ['3x3 s1 p1, 5->37 on 5x16', [2, 5, 5, 16], [37, 5, 3, 3], 1, 1],
  ['3x3 s2 p1, 3->33 on 7x32', [1, 3, 7, 32], [33, 3, 3, 3], 2, 1],
  ['3x3 s1 p1 on a 3x2 map, 9->5', [2, 9, 3, 2], [5, 9, 3, 3], 1, 1],
  ['3x3 s1 p1 on a 1x1 map, 4->3', [3, 4, 1, 1], [3, 4, 3, 3], 1, 1],
  ['5x5 s1 p2, 3->2 on 7x6', [1, 3, 7, 6], [2, 3, 5, 5], 1, 2],
  ['1x1 s2 p0, 12->8 on 7x7', [2, 12, 7, 7], [8, 12, 1, 1], 2, 0],
  // Strided input gradients (transposed convs): odd sizes, pads 0/1/2, strides 2 and 3,
  // channel blocks past Cin, several workgroups, a window smaller than the stride.
  ['3x3 s2 p0, 5->7 on 11x9', [2, 5, 11, 9], [7, 5, 3, 3], 2, 0],
  ['3x3 s2 p1, 20->6 on 13x15, batch 3', [3, 20, 13, 15], [6, 20, 3, 3], 2, 1],
  ['3x3 s2 p2, 3->4 on 7x10', [1, 3, 7, 10], [4, 3, 3, 3], 2, 2],
  ['3x3 s3 p1, 6->5 on 11x13', [2, 6, 11, 13], [5, 6, 3, 3], 3, 1],
  ['3x3 s3 p2, 9->3 on 10x8', [1, 9, 10, 8], [3, 9, 3, 3], 3, 2],
  ['5x5 s3 p0, 2->4 on 13x11', [2, 2, 13, 11], [4, 2, 5, 5], 3, 0],
  ['2x2 s3 p1 (window under the stride), 4->6 on 9x11', [1, 4, 9, 11], [6, 4, 2, 2], 3, 1],
  ['3x3 s1 p2 (padding past the window), 5->3 on 6x7', [2, 5, 6, 7], [3, 5, 3, 3], 1, 2],
  ['3x3 s2 p1, 16->32 on 28x28 (the small ResNet stage 2), batch 2', [2, 16, 28, 28], [32, 16, 3, 3], 2, 1],
  // Weight gradients on padded copies: few input channels (lanes along the rows of the sum, 3 x 6
  // rows: not a multiple of 8) with a partial channel block, and an odd map whose planes and rows
  // start off the vec4 grid, at stride 2 without padding.
  ['3x3 s2 p1, 3->17 on 11x13, batch 3', [3, 3, 11, 13], [17, 3, 3, 3], 2, 1],
  ['3x3 s2 p0, 9->12 on 7x9', [2, 9, 7, 9], [12, 9, 3, 3], 2, 0],
  // The rolling weight gradient reading X itself (planes and stride rows whole vec4s): window
  // rows starting at two lanes of a vec4 (14- and 10-wide maps), 3 carried rows (5x5), no
  // padding, an odd height at stride 1; channels past the tile and not a multiple of 8.
  ['3x3 s2 p1, 10->20 on 10x14, batch 3', [3, 10, 10, 14], [20, 10, 3, 3], 2, 1],
  ['5x5 s2 p2, 9->7 on 10x10', [2, 9, 10, 10], [7, 9, 5, 5], 2, 2],
  ['3x3 s2 p0, 5->6 on 6x14', [2, 5, 6, 14], [6, 5, 3, 3], 2, 0],
  ['3x3 s1 p1, 9->5 on 7x8', [2, 9, 7, 8], [5, 9, 3, 3], 1, 1],
  // The pointwise GEMM kernels (1x1, no padding): partial row tiles of 64 and 32 output channels
  // and a partial column tile over 70 input channels (two subgroups across), images split in 3;
  // 4 columns a lane (fewer than 64 input channels); strided input gradients over 66 input
  // channels (partial tiles of 32 and 64), their columns running across images, dY read as
  // floats (25 pixels) or vec4s (16, 12 and 156 pixels: several workgroups across, an odd OW),
  // strides 2 and 3 on maps their stride does not divide.
  ['1x1 s1 p0, 70->37 on 5x7, batch 3', [3, 70, 5, 7], [37, 70, 1, 1], 1, 0],
  ['1x1 s2 p0, 66->20 on 9x9', [2, 66, 9, 9], [20, 66, 1, 1], 2, 0],
  ['1x1 s2 p0, 9->40 on 8x8', [2, 9, 8, 8], [40, 9, 1, 1], 2, 0],
  ['1x1 s3 p0, 9->6 on 10x8', [1, 9, 10, 8], [6, 9, 1, 1], 3, 0],
  ['1x1 s2 p0, 10->7 on 24x25', [2, 10, 24, 25], [7, 10, 1, 1], 2, 0],
];

for (const [name, xs, ws, stride, padding] of designCases) {
  test(`conv2d ${name}: every design and tile against float64`, async () => {
    const xd = randomArray(xs, 11);
    const wd = randomArray(ws, 12);
    const x = Tensor.fromArray(xd, xs);
    const w = Tensor.fromArray(wd, ws);
    const g = conv2dGeometry(x, w, { stride, padding });
    const gyd = randomArray([g.N, g.Cout, g.OH, g.OW], 13);
    const gy = Tensor.fromArray(gyd, [g.N, g.Cout, g.OH, g.OW]);
    const yRef = convRef(xd, wd, null, xs, ws, stride, padding);
    const dxRef = inputGradRef(gyd, wd, g);
    const dwRef = weightGradRef(gyd, xd, g);
    const tol = { rtol: 1e-4, atol: 1e-4 };
    // The stride-1 input gradient is a forward conv with the flipped weight (its own geometry).
    const flippedGeometry: ConvGeometry = { ...g, Cin: g.Cout, Cout: g.Cin, H: g.OH, W: g.OW, OH: g.H, OW: g.W, pad: g.kH - 1 - g.pad };
    const forwardNames = new Set([...conv2dVariants('forward', g), ...(stride === 1 ? conv2dVariants('forward', flippedGeometry) : [])]);
    const check = async (lanes: string, only: (variant: string) => boolean) => {
      for (const variant of forwardNames) {
        if (!only(variant)) continue;
        forceVariant('conv2d.forward', variant);
        const [y, dx] = scope(() => [conv2d(x, w, null, { stride, padding }), conv2dInputGrad(gy, w, g)]);
        assertClose(await y.toArray(), yRef, tol, `${name} forward (${variant}${lanes})`);
        assertClose(await dx.toArray(), dxRef, tol, `${name} input grad (${variant}${lanes})`);
        y.dispose();
        dx.dispose();
      }
      for (const variant of conv2dVariants('inputGrad', g)) {
        if (!only(variant)) continue;
        forceVariant('conv2d.inputGrad', variant);
        const dx = conv2dInputGrad(gy, w, g);
        assertClose(await dx.toArray(), dxRef, tol, `${name} input grad (${variant}${lanes})`);
        dx.dispose();
      }
      for (const variant of conv2dVariants('weightGrad', g)) {
        if (!only(variant)) continue;
        forceVariant('conv2d.weightGrad', variant);
        const dw = conv2dWeightGrad(gy, x, g);
        assertClose(await dw.toArray(), dwRef, tol, `${name} weight grad (${variant}${lanes})`);
        dw.dispose();
      }
    };
    try {
      await check(` ${subgroupConvSize()} lanes`, () => true);
      // The subgroup kernels' 4-lane code is correct on subgroups of 8 as well, and this is
      // where it is checked: SwiftShader (4 lanes) is not offered these kernels (the test below).
      if (subgroupConvSize() === 8) {
        forceSubgroupConvLanes(4);
        await check(' 4 lanes on 8', (v) => v.startsWith('subgroup') || v.startsWith('pointwise'));
      }
    } finally {
      forceSubgroupConvLanes(null);
      forceVariant('conv2d.forward', null);
      forceVariant('conv2d.inputGrad', null);
      forceVariant('conv2d.weightGrad', null);
      for (const t of [x, w, gy]) t.dispose();
    }
  });
}

test('conv2d subgroup kernels: offered with subgroups of 8; skipped with 4 (SwiftShader: no faster than unrolled there, their 4-lane code checked on lavapipe) or none', () => {
  const g = conv2dGeometry(Tensor.empty([2, 8, 8, 8]), Tensor.empty([8, 8, 3, 3]), { padding: 1 });
  const offered = conv2dVariants('forward', g).some((n) => n.startsWith('subgroup'));
  const d = engine().device;
  const info = d.adapterInfo as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  const why = `subgroups ${d.features.has('subgroups') ? `${info.subgroupMinSize}-${info.subgroupMaxSize}` : 'absent'}`;
  assert.is(offered, subgroupConvOffered(), `subgroup variants offered exactly where the rule allows (${why})`);
  assert.is(offered, d.features.has('subgroups') && info.subgroupMinSize === 8 && info.subgroupMaxSize === 8, `offered with subgroups of exactly 8 (${why})`);
  if (!offered) {
    const reason = subgroupConvSize() === 4
      ? 'subgroups of 4 (SwiftShader): no faster than the unrolled kernels there; their 4-lane code is checked on lavapipe'
      : 'they need subgroups of a fixed size 4 or 8';
    console.warn(`conv2d subgroup variants skipped on this adapter (${why}): ${reason}`);
  }
});

test('conv2d: a weight is packed once until a kernel writes it, and the pack is freed with it', async () => {
  const xs = [2, 3, 7, 5];
  const ws = [5, 3, 3, 3];
  const xd = randomArray(xs, 21);
  const wd = randomArray(ws, 22);
  await noLeaks(async () => {
    const x = Tensor.fromArray(xd, xs);
    const w = Tensor.fromArray(wd, ws, { requiresGrad: true });
    forceVariant('conv2d.forward', 'unrolled'); // a design that reads the packed weight
    try {
      const e = engine();
      const cachedBefore = e.pool.derivedBytes;
      let before = e.dispatchCount;
      const y1 = conv2d(x, w, null, { padding: 1 });
      const first = e.dispatchCount - before;
      assert.ok(e.pool.derivedBytes > cachedBefore, 'no packed weight kept');
      before = e.dispatchCount;
      const y2 = conv2d(x, w, null, { padding: 1 });
      // Fewer dispatches the second time: no pack (and, in tests, no poison fill of a new pack).
      assert.ok(e.dispatchCount - before < first, `the second conv repacked the weight (${e.dispatchCount - before} dispatches, the first ${first})`);
      assertClose(await y1.toArray(), convRef(xd, wd, null, xs, ws, 1, 1), { rtol: 1e-4, atol: 1e-4 }, 'first conv');
      assert.equal(Array.from(await y2.toArray()), Array.from(await y1.toArray()), 'second conv');
      // An in-place update (SGD, a kernel writing w) makes the pack stale: the next conv sees it.
      w.grad = Tensor.fromArray(new Array(wd.length).fill(1), ws);
      new SGD([w], { lr: 0.25 }).step();
      const y3 = conv2d(x, w, null, { padding: 1 });
      assertClose(await y3.toArray(), convRef(xd, wd.map((v) => v - 0.25), null, xs, ws, 1, 1), { rtol: 1e-4, atol: 1e-4 }, 'conv after an SGD step');
      for (const t of [x, w, w.grad, y1, y2, y3]) t.dispose();
      assert.is(e.pool.derivedBytes, cachedBefore, 'the packed weight outlived its weight');
    } finally {
      forceVariant('conv2d.forward', null);
    }
  });
});

test('conv2d variants: the designs this adapter offers, the real-GPU one among them', () => {
  const g = conv2dGeometry(Tensor.empty([2, 8, 8, 8]), Tensor.empty([8, 8, 3, 3]), { padding: 1 });
  for (const op of ['forward', 'weightGrad'] as const) {
    const designs = new Set(conv2dVariants(op, g).map((n) => n.split(' ')[0]));
    assert.ok(designs.has('register'), `${op}: register design offered`);
    assert.ok(designs.has('workgroup'), `${op}: workgroup-memory design offered`);
  }
  // Strided input gradients: the register and unrolled kernels everywhere, the subgroup one
  // where it runs.
  const strided = conv2dGeometry(Tensor.empty([2, 8, 9, 9]), Tensor.empty([8, 8, 3, 3]), { stride: 2, padding: 1 });
  const forward = new Set(conv2dVariants('forward', g).map((n) => n.split(' ')[0]));
  const inputGrad = new Set(conv2dVariants('inputGrad', strided).map((n) => n.split(' ')[0]));
  assert.ok(inputGrad.has('register'), 'inputGrad: register design offered');
  assert.ok(inputGrad.has('unrolled'), 'inputGrad: unrolled design offered');
  assert.is(inputGrad.has('subgroup'), forward.has('subgroup'), 'inputGrad: subgroup design wherever the forward has it');
  assert.equal(conv2dVariants('inputGrad', g), [], 'a stride-1 input gradient runs as a flipped forward conv');
});

test('conv2d weight-gradient rule: the rolling subgroup kernel at strides 1 and 2 (where the subgroup kernels run), correct', async () => {
  const e = engine();
  if (!subgroupConvOffered() || !e.device.features.has('timestamp-query')) return;
  clearTuning();
  for (const stride of [1, 2]) {
    const xs = [2, 16, 9, 12];
    const x = Tensor.fromArray(randomArray(xs, 31), xs);
    const w = Tensor.empty([12, 16, 3, 3]);
    const g = conv2dGeometry(x, w, { stride, padding: 1 });
    const gys = [g.N, g.Cout, g.OH, g.OW];
    const gy = Tensor.fromArray(randomArray(gys, 32), gys);
    e.startProfile({ byLabel: true });
    const dw = conv2dWeightGrad(gy, x, g);
    const labels = [...(await e.stopProfile()).keys()];
    assert.ok(labels.some((l) => l.includes('packed rolling')), `stride ${stride}: ${labels.join(' | ')}`);
    assertClose(await dw.toArray(), weightGradRef(randomArray(gys, 32), randomArray(xs, 31), g), { rtol: 1e-4, atol: 1e-4 }, `stride ${stride}`);
    for (const t of [x, w, gy, dw]) t.dispose();
  }
});

test('conv2d 1x1 rules: the pointwise kernels for the weight gradient and the strided input gradient (where the subgroup kernels run), correct', async () => {
  const e = engine();
  if (!subgroupConvOffered() || !e.device.features.has('timestamp-query')) return;
  clearTuning();
  for (const stride of [1, 2]) {
    const xs = [3, 12, 9, 10];
    const x = Tensor.fromArray(randomArray(xs, 41), xs);
    const wd = randomArray([20, 12, 1, 1], 42);
    const w = Tensor.fromArray(wd, [20, 12, 1, 1]);
    const g = conv2dGeometry(x, w, { stride });
    const gys = [g.N, g.Cout, g.OH, g.OW];
    const gy = Tensor.fromArray(randomArray(gys, 43), gys);
    e.startProfile({ byLabel: true });
    const dw = conv2dWeightGrad(gy, x, g);
    const dx = conv2dInputGrad(gy, w, g);
    const labels = [...(await e.stopProfile()).keys()];
    assert.ok(labels.some((l) => l.startsWith('conv2d.pointwise.weightGrad')), `stride ${stride}: ${labels.join(' | ')}`);
    // Stride 1: a matmul.
    assert.is(labels.some((l) => l.startsWith('conv2d.pointwise.inputGrad')), stride === 2, `stride ${stride}: ${labels.join(' | ')}`);
    const tol = { rtol: 1e-4, atol: 1e-4 };
    assertClose(await dw.toArray(), weightGradRef(randomArray(gys, 43), randomArray(xs, 41), g), tol, `stride ${stride} weight grad`);
    assertClose(await dx.toArray(), inputGradRef(randomArray(gys, 43), wd, g), tol, `stride ${stride} input grad`);
    for (const t of [x, w, gy, dw, dx]) t.dispose();
  }
});

test('conv2d tuning: off, a shape runs the rule; on, it is measured once and its choice kept', async () => {
  clearTuning();
  const x = Tensor.fromArray(randomArray([2, 8, 6, 6], 21), [2, 8, 6, 6]);
  const w = Tensor.fromArray(randomArray([8, 8, 3, 3], 22), [8, 8, 3, 3]);
  const yRef = convRef(randomArray([2, 8, 6, 6], 21), randomArray([8, 8, 3, 3], 22), null, [2, 8, 6, 6], [8, 8, 3, 3], 1, 1);
  try {
    scope(() => { conv2d(x, w, null, { padding: 1 }); });
    assert.equal(await tunePending(), [], 'tuning off: nothing queued');
    setTuning(true);
    const y = conv2d(x, w, null, { padding: 1 });
    assertClose(await y.toArray(), yRef, { rtol: 1e-4, atol: 1e-4 }, 'output while tuning is pending');
    y.dispose();
    const results = await tunePending(1);
    assert.is(results.length, 1, 'one shape measured');
    const [r] = results;
    assert.is(r.op, 'conv2d.forward');
    const names = conv2dVariants('forward', conv2dGeometry(x, w, { padding: 1 }));
    assert.equal(r.times.map((t) => t.name).sort(), [...names].sort(), 'every candidate timed');
    const timeOf = (name: string) => r.times.find((t) => t.name === name)!;
    if (r.choice !== r.rule) {
      const [c, rule] = [timeOf(r.choice), timeOf(r.rule)];
      assert.ok(c.ms <= (1 - TUNING_MARGIN) * rule.ms && c.median_ms <= (1 - TUNING_MARGIN) * rule.median_ms, `${r.choice} replaced the rule's ${r.rule} only clearly faster: ${JSON.stringify(r.times)}`);
    }
    const table = tuningTable();
    const entries = Object.values(table).flatMap((e) => Object.entries(e));
    assert.equal(entries.length, 1, 'one choice saved');
    assert.ok(entries[0][0].startsWith(`conv2d.forward ${r.shape} #`), `key ${entries[0][0]}`);
    assert.is(entries[0][1], r.choice);
    // Measured once: the same shape queues nothing more, and runs the choice correctly.
    const y2 = conv2d(x, w, null, { padding: 1 });
    assert.equal(await tunePending(), []);
    assertClose(await y2.toArray(), yRef, { rtol: 1e-4, atol: 1e-4 }, 'output with the measured choice');
    y2.dispose();
    // A saved table loads back after a clear.
    clearTuning();
    loadTuningTable(table);
    assert.equal(tuningTable(), table);
    // A choice saved among other candidates (an older version's list) is not used: the shape is
    // measured again.
    const [adapter] = Object.keys(table);
    clearTuning();
    loadTuningTable({ [adapter]: { [`conv2d.forward ${r.shape}`]: r.choice } });
    scope(() => { conv2d(x, w, null, { padding: 1 }); });
    assert.is((await tunePending(1)).length, 1, 'a choice from another candidate list is measured again');
  } finally {
    setTuning(false);
    clearTuning();
    x.dispose();
    w.dispose();
  }
});

test('conv2d pointwise weight gradient at strides 2 and 3: X read strided or through its compact copy (vec4 and float subsample loads, rows past OW), 8 and 4 lanes, against float64', async () => {
  if (!subgroupConvOffered()) return;
  // [X shape, Cout, stride]: the subsample reads vec4s where X's planes and s rows are whole
  // vec4s (8x8 and 12x28 at s2, 10x8 at s3), else floats (9x9, 24x25); compact rows are OW
  // rounded up to 4 (OW 4, 14, 3, 5, 12).
  const cases: [number[], number, number][] = [
    [[2, 9, 8, 8], 40, 2],
    [[3, 12, 12, 28], 20, 2],
    [[1, 9, 10, 8], 6, 3],
    [[2, 66, 9, 9], 20, 2],
    [[2, 10, 24, 25], 7, 2],
  ];
  try {
    for (const lanes of subgroupConvSize() === 8 ? [null, 4 as const] : [null]) {
      forceSubgroupConvLanes(lanes);
      for (const [xs, Cout, stride] of cases) {
        const xd = randomArray(xs, 51);
        const x = Tensor.fromArray(xd, xs);
        const w = Tensor.empty([Cout, xs[1], 1, 1]);
        const g = conv2dGeometry(x, w, { stride });
        const gys = [g.N, g.Cout, g.OH, g.OW];
        const gyd = randomArray(gys, 52);
        const gy = Tensor.fromArray(gyd, gys);
        const ref = weightGradRef(gyd, xd, g);
        for (const compact of [false, true]) {
          const tile = { TM: 32, TN: xs[1] >= 64 ? 8 : 4, chunks: 2, compact };
          const dw = pointwiseWeightGrad(gy, x, g, tile);
          assertClose(await dw.toArray(), ref, { rtol: 1e-4, atol: 1e-4 }, `${xs.join('x')} s${stride} ${compact ? 'compact' : 'direct'} ${lanes ?? subgroupConvSize()} lanes`);
          dw.dispose();
        }
        for (const t of [x, w, gy]) t.dispose();
      }
    }
  } finally {
    forceSubgroupConvLanes(null);
  }
});

test.run();
