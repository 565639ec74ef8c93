// MoCo's queue of negatives on the GPU (shaders/queue.wgsl): keys written as columns of a
// [D, K] ring buffer at a pointer that lives in an i32 [1] tensor, which then advances by the
// batch size modulo K. Two dispatches, no readback, no autograd (it writes the queue's and the
// pointer's storage in place, as the optimizer writes parameters).
import source from '../../shaders/queue.wgsl';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import type { Tensor } from '../tensor.ts';

const kernels = declareKernels({
  name: 'queue',
  source,
  params: { N: 'u32', D: 'u32', K: 'u32' },
  entryPoints: {
    enqueueColumns: { inputs: { keys: 'f32', ptrIn: 'i32' }, outputs: { queue: 'f32' } },
    advancePointer: { outputs: { pointer: 'i32' } },
  },
});

/** queue[:, (ptr + n) % K] = keys[n, :] for every row n of `keys` [N, D], then
 * ptr = (ptr + N) % K; `queue` is f32 [D, K], `ptr` i32 [1]. A batch need not divide K: the
 * columns wrap around (the reference asserts K % N == 0). */
export function enqueueColumns(queue: Tensor, ptr: Tensor, keys: Tensor): void {
  if (queue.dtype !== 'f32' || keys.dtype !== 'f32') throw new TypeError(`enqueueColumns: expected f32 queue and keys, got ${queue.describe()} and ${keys.describe()}`);
  if (ptr.dtype !== 'i32' || ptr.size !== 1) throw new TypeError(`enqueueColumns: the pointer must be one i32, got ${ptr.describe()}`);
  if (queue.ndim !== 2) throw new RangeError(`enqueueColumns: the queue must be [D, K], got ${queue.describe()}`);
  const [D, K] = queue.shape;
  if (keys.ndim !== 2 || keys.shape[1] !== D) throw new RangeError(`enqueueColumns: keys must be [N, ${D}] for a queue ${queue.describe()}, got ${keys.describe()}`);
  const N = keys.shape[0];
  if (N > K) throw new RangeError(`enqueueColumns: ${N} keys do not fit a queue of ${K}`);
  if (N === 0) return;
  const params = { N, D, K };
  launch(kernels.enqueueColumns, { label: `enqueueColumns ${keys.describe()} -> ${queue.describe()}`, inputs: { keys, ptrIn: ptr }, outputs: { queue }, params, workgroups: grid1d(N * D, 256) });
  launch(kernels.advancePointer, { label: `advancePointer ${queue.describe()}`, inputs: {}, outputs: { pointer: ptr }, params, workgroups: [1, 1, 1] });
}
