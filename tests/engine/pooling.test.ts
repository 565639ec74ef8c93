import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, avgPool2d, globalAvgPool, maxPool2d, scope } from '../../engine/index.ts';
import type { Shape } from '../../engine/index.ts';
import { gradCheck, randomArray, size, tensor } from '../helpers.ts';

interface Geo { k: [number, number]; s: [number, number]; p: [number, number] }

/** float64 pooling over NCHW; max keeps the first maximum, avg divides by the full window. */
function poolRef(kind: 'max' | 'avg', x: ArrayLike<number>, shape: Shape, g: Geo): { y: Float64Array; outShape: number[] } {
  const [N, C, H, W] = shape;
  const OH = Math.floor((H + 2 * g.p[0] - g.k[0]) / g.s[0]) + 1;
  const OW = Math.floor((W + 2 * g.p[1] - g.k[1]) / g.s[1]) + 1;
  const y = new Float64Array(N * C * OH * OW);
  for (let pl = 0; pl < N * C; pl++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) {
    let acc = kind === 'max' ? -Infinity : 0;
    for (let kh = 0; kh < g.k[0]; kh++) for (let kw = 0; kw < g.k[1]; kw++) {
      const ih = oh * g.s[0] - g.p[0] + kh;
      const iw = ow * g.s[1] - g.p[1] + kw;
      if (ih < 0 || iw < 0 || ih >= H || iw >= W) continue;
      const v = x[(pl * H + ih) * W + iw];
      acc = kind === 'max' ? Math.max(acc, v) : acc + v;
    }
    y[(pl * OH + oh) * OW + ow] = kind === 'max' ? acc : acc / (g.k[0] * g.k[1]);
  }
  return { y, outShape: [N, C, OH, OW] };
}

/** Distinct values (a shuffled ramp) so finite differences never straddle a tie in max pooling. */
function distinct(shape: Shape, seed: number): Float64Array {
  const n = size(shape);
  const r = randomArray([n], seed);
  const order = [...Array(n).keys()].sort((a, b) => r[a] - r[b]);
  const out = new Float64Array(n);
  order.forEach((j, rank) => { out[j] = Math.fround(-1 + (2 * rank) / n); });
  return out;
}

const maxCases: [Shape, Geo][] = [
  [[2, 3, 9, 7], { k: [3, 3], s: [2, 2], p: [1, 1] }], // the ImageNet stem's pool, odd input
  [[1, 5, 8, 8], { k: [3, 3], s: [2, 2], p: [1, 1] }],
  [[1, 2, 6, 5], { k: [2, 2], s: [2, 2], p: [0, 0] }],
  [[1, 1, 7, 7], { k: [3, 2], s: [1, 2], p: [1, 0] }],
];

for (const [shape, g] of maxCases) {
  test(`maxPool2d [${shape.join(', ')}] k${g.k} s${g.s} p${g.p}: forward and grad`, async () => {
    await gradCheck({
      name: 'maxPool2d', shapes: [shape],
      gpu: (x) => maxPool2d(x, g.k, { stride: g.s, padding: g.p }),
      cpu: (x) => poolRef('max', x, shape, g).y,
      inputs: (s) => distinct(s, 3),
      eps: 1e-4,
    });
  });
}

test('maxPool2d ties send the gradient to the first maximum (PyTorch)', async () => {
  const x = tensor([1, 1, 1, 1, 0, 2, 2, 0, 5, 3, 5, 5, 4, 4, 4, 4], [1, 1, 4, 4], true);
  const y = maxPool2d(x, 2);
  assert.equal(Array.from(await y.toArray()), [2, 2, 5, 5]);
  y.backward(Tensor.fromArray([1, 2, 3, 4], [1, 1, 2, 2]));
  assert.equal(Array.from(await x.grad!.toArray()), [0, 0, 0, 0, 0, 1, 2, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
  for (const t of [x.grad!, x, y]) t.dispose();
});

const avgCases: [Shape, Geo][] = [
  [[2, 3, 8, 6], { k: [2, 2], s: [2, 2], p: [0, 0] }],
  [[1, 5, 9, 7], { k: [2, 2], s: [2, 2], p: [0, 0] }], // odd sizes drop the last row/column
  [[1, 2, 7, 7], { k: [3, 3], s: [2, 2], p: [1, 1] }], // padding counts in the divisor
];

for (const [shape, g] of avgCases) {
  test(`avgPool2d [${shape.join(', ')}] k${g.k} s${g.s} p${g.p}: forward and grad`, async () => {
    await gradCheck({
      name: 'avgPool2d', shapes: [shape],
      gpu: (x) => avgPool2d(x, g.k, { stride: g.s, padding: g.p }),
      cpu: (x) => poolRef('avg', x, shape, g).y,
    });
  });
}

// [2, 3, 28, 28]: rows of 784 split into chunks and folded again; [2, 5, 7, 3]: a gradient
// broadcast over runs of 21 (a value per lane).
for (const shape of [[2, 5, 7, 3], [1, 3, 1, 1], [3, 4, 4, 4], [2, 3, 28, 28]] as Shape[]) {
  test(`globalAvgPool [${shape.join(', ')}]: forward and grad`, async () => {
    await gradCheck({
      name: 'globalAvgPool', shapes: [shape],
      gpu: (x) => {
        const y = globalAvgPool(x);
        assert.equal(y.shape, shape.slice(0, 2));
        return y;
      },
      cpu: (x) => poolRef('avg', x, shape, { k: [shape[2], shape[3]], s: [1, 1], p: [0, 0] }).y,
    });
  });
}

test('pooling errors', () => {
  scope(() => {
    assert.throws(() => maxPool2d(Tensor.zeros([1, 2, 3]), 2), /NCHW/);
    assert.throws(() => maxPool2d(Tensor.zeros([1, 1, 4, 4]), 3, { padding: 2 }), /half the kernel/);
    assert.throws(() => avgPool2d(Tensor.zeros([1, 1, 2, 2]), 3), /does not fit/);
  });
});

test.run();
