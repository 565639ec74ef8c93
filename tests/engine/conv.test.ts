import { test } from 'uvu';
import { conv2d } from '../../engine/ops/conv.ts';
import { gradCheck } from '../helpers.ts';

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

test.run();
