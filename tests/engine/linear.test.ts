import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, linear, scope } from '../../engine/index.ts';
import { gradCheck } from '../helpers.ts';

/** float64 x W^T + b over the last axis of x. */
function linearRef(x: Float64Array, w: Float64Array, b: Float64Array | null, inF: number, outF: number): Float64Array {
  const rows = x.length / inF;
  const y = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) for (let o = 0; o < outF; o++) {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[o * inF + i];
    y[r * outF + o] = s;
  }
  return y;
}

test('linear [5, 7] x [3, 7]^T + b: forward and grads of x, W, b', async () => {
  await gradCheck({
    name: 'linear', shapes: [[5, 7], [3, 7], [3]],
    gpu: (x, w, b) => linear(x, w, b),
    cpu: (x, w, b) => linearRef(x, w, b, 7, 3),
  });
});

test('linear without bias, batch 1, odd features', async () => {
  await gradCheck({
    name: 'linear no bias', shapes: [[1, 13], [10, 13]],
    gpu: (x, w) => linear(x, w),
    cpu: (x, w) => linearRef(x, w, null, 13, 10),
  });
});

test('linear on [2, 3, 6] (leading batch dims) and on a vector', async () => {
  await gradCheck({
    name: 'linear 3-D', shapes: [[2, 3, 6], [5, 6], [5]],
    gpu: (x, w, b) => linear(x, w, b),
    cpu: (x, w, b) => linearRef(x, w, b, 6, 5),
  });
  await gradCheck({
    name: 'linear 1-D', shapes: [[6], [4, 6], [4]],
    gpu: (x, w, b) => linear(x, w, b),
    cpu: (x, w, b) => linearRef(x, w, b, 6, 4),
  });
});

test('linear shape errors', () => {
  scope(() => {
    assert.throws(() => linear(Tensor.zeros([2, 5]), Tensor.zeros([3, 4])), /does not end in 4 features/);
    assert.throws(() => linear(Tensor.zeros([2, 4]), Tensor.zeros([3, 4]), Tensor.zeros([4])), /bias must be \[3\]/);
  });
});

test.run();
