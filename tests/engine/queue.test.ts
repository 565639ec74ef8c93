// MoCo's queue on the GPU: enqueueColumns writes the keys as columns at the pointer (wrapping
// around), leaves every other column bit for bit as it was, and advances the pointer modulo K,
// all without a readback; bad shapes and dtypes are refused with their shapes named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor } from '../../engine/index.ts';
import { enqueueColumns } from '../../engine/ops/queue.ts';
import { noLeaks, randomArray } from '../helpers.ts';

/** The reference: queue [D, K] row-major, keys [N, D]. */
function reference(queue: Float64Array, D: number, K: number, keys: Float64Array, N: number, ptr: number): { queue: Float64Array; ptr: number } {
  const q: Float64Array = Float64Array.from(queue);
  for (let n = 0; n < N; n++) for (let d = 0; d < D; d++) q[d * K + ((ptr + n) % K)] = keys[n * D + d];
  return { queue: q, ptr: (ptr + N) % K };
}

test('enqueueColumns: columns at the pointer, wrapping; the rest untouched; the pointer advances mod K', () => noLeaks(async () => {
  for (const [D, K, N, start] of [[3, 7, 3, 5], [5, 16, 4, 12], [2, 4, 4, 0], [257, 9, 2, 8], [1, 1, 1, 0]] as const) {
    const q0 = Float32Array.from(randomArray([D, K], D * 100 + K));
    const queue = Tensor.fromArray(q0, [D, K]);
    const ptr = Tensor.fromArray([start], [1], { dtype: 'i32' });
    let want: { queue: Float64Array; ptr: number } = { queue: Float64Array.from(q0), ptr: start };
    for (let step = 0; step < 3; step++) {
      const k = Float32Array.from(randomArray([N, D], step + 7 * D, -2, 2));
      const keys = Tensor.fromArray(k, [N, D]);
      enqueueColumns(queue, ptr, keys);
      want = reference(want.queue, D, K, Float64Array.from(k), N, want.ptr);
      keys.dispose();
    }
    assert.equal([...(await queue.toArray())], [...Float32Array.from(want.queue)], `queue D=${D} K=${K} N=${N} from ${start}`);
    assert.equal([...(await ptr.toArray())], [want.ptr], `pointer D=${D} K=${K} N=${N} from ${start}`);
    queue.dispose();
    ptr.dispose();
  }
}));

test('enqueueColumns: refuses wrong dtypes and shapes, naming them', () => noLeaks(async () => {
  const queue = Tensor.zeros([4, 8]);
  const ptr = Tensor.fromArray([0], [1], { dtype: 'i32' });
  const keys = Tensor.zeros([2, 4]);
  const fptr = Tensor.zeros([1]);
  const wide = Tensor.zeros([2, 5]);
  const many = Tensor.zeros([9, 4]);
  const flat = Tensor.zeros([32]);
  assert.throws(() => enqueueColumns(queue, fptr, keys), /the pointer must be one i32, got tensor #\d+ f32\[1\]/);
  assert.throws(() => enqueueColumns(queue, ptr, wide), /keys must be \[N, 4\] for a queue tensor #\d+ f32\[4, 8\], got tensor #\d+ f32\[2, 5\]/);
  assert.throws(() => enqueueColumns(queue, ptr, many), /9 keys do not fit a queue of 8/);
  assert.throws(() => enqueueColumns(flat, ptr, keys), /the queue must be \[D, K\], got tensor #\d+ f32\[32\]/);
  assert.equal([...(await queue.toArray())], new Array(32).fill(0), 'nothing written');
  for (const t of [queue, ptr, keys, fptr, wide, many, flat]) t.dispose();
}));

test.run();
