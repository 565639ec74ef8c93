import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, batchNorm, scope, sum, mul } from '../../engine/index.ts';
import type { Shape } from '../../engine/index.ts';
import { assertClose, gradCheck, noLeaks, randomArray, size, tensor } from '../helpers.ts';

interface RefOptions {
  training: boolean;
  relu?: boolean;
  runningMean?: Float64Array;
  runningVar?: Float64Array;
  eps?: number;
}

/** float64 reference of F.batch_norm on [N, C, ...]; returns y and the batch mean/biased var. */
function bnRef(x: ArrayLike<number>, shape: Shape, gamma: ArrayLike<number> | null, beta: ArrayLike<number> | null, o: RefOptions) {
  const [N, C] = shape;
  const HW = size(shape.slice(2));
  const M = N * HW;
  const eps = o.eps ?? 1e-5;
  const mean = new Float64Array(C);
  const variance = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let s = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) s += x[(n * C + c) * HW + i];
    mean[c] = s / M;
    let v = 0;
    for (let n = 0; n < N; n++) for (let i = 0; i < HW; i++) v += (x[(n * C + c) * HW + i] - mean[c]) ** 2;
    variance[c] = v / M;
  }
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) {
    const m = o.training ? mean[c] : o.runningMean![c];
    const v = o.training ? variance[c] : o.runningVar![c];
    for (let i = 0; i < HW; i++) {
      const k = (n * C + c) * HW + i;
      let val = (x[k] - m) / Math.sqrt(v + eps) * (gamma ? gamma[c] : 1) + (beta ? beta[c] : 0);
      if (o.relu) val = Math.max(val, 0);
      y[k] = val;
    }
  }
  return { y, mean, variance };
}

const cases: { shape: Shape; relu: boolean }[] = [
  { shape: [3, 5, 3, 7], relu: false },
  { shape: [1, 3, 5, 5], relu: false },
  { shape: [2, 3, 4, 6], relu: false }, // HW % 4 == 0: the vec4 element-wise passes
  { shape: [3, 2, 2, 2], relu: true },
  { shape: [2, 3, 13, 11], relu: true },
  { shape: [1, 2, 17, 19], relu: false },
  { shape: [6, 7], relu: false },
  { shape: [5, 3], relu: true },
];

for (const { shape, relu } of cases) {
  test(`batchNorm training ${relu ? '+relu ' : ''}[${shape.join(', ')}] forward and grads of x, gamma, beta`, async () => {
    const C = shape[1];
    await gradCheck({
      name: 'batchNorm', shapes: [shape, [C], [C]],
      gpu: (x, g, b) => batchNorm(x, g, b, { relu }),
      cpu: (x, g, b) => bnRef(x, shape, g, b, { training: true, relu }).y,
      inputs: (s, k) => (k === 1 ? randomArray(s, 7, 0.5, 1.5) : randomArray(s, 11 + k, -1, 1)),
      // float64 differences: a small step keeps them off the ReLU's kink
      eps: relu ? 1e-6 : 1e-3,
    });
  });
}

test('batchNorm affine false, training and eval', async () => {
  const shape = [2, 3, 4, 5];
  await gradCheck({
    name: 'batchNorm affine false', shapes: [shape],
    gpu: (x) => batchNorm(x, null, null),
    cpu: (x) => bnRef(x, shape, null, null, { training: true }).y,
  });
  const rm = randomArray([3], 3, -0.5, 0.5);
  const rv = randomArray([3], 4, 0.5, 2);
  await gradCheck({
    name: 'batchNorm eval affine false', shapes: [shape],
    gpu: (x) => {
      const m = tensor(rm, [3]);
      const v = tensor(rv, [3]);
      const y = batchNorm(x, null, null, { training: false, runningMean: m, runningVar: v });
      return y;
    },
    cpu: (x) => bnRef(x, shape, null, null, { training: false, runningMean: rm, runningVar: rv }).y,
  });
});

test('batchNorm eval (+relu) forward and grads use the running statistics', async () => {
  const rm = randomArray([5], 5, -0.5, 0.5);
  const rv = randomArray([5], 6, 0.5, 2);
  for (const [shape, relu] of [[[2, 5, 3, 3], false], [[2, 5, 3, 3], true], [[1, 5, 2, 4], true]] as [number[], boolean][]) {
    await gradCheck({
      name: `batchNorm eval relu=${relu}`, shapes: [shape, [5], [5]],
      gpu: (x, g, b) => batchNorm(x, g, b, { training: false, relu, runningMean: tensor(rm, [5]), runningVar: tensor(rv, [5]) }),
      cpu: (x, g, b) => bnRef(x, shape, g, b, { training: false, relu, runningMean: rm, runningVar: rv }).y,
      eps: relu ? 1e-6 : 1e-3,
    });
  }
});

test('batchNorm running statistics after several steps, then eval forward', async () => {
  await noLeaks(async () => {
    const shape = [3, 6, 5, 3];
    const C = 6;
    const rmRef = new Float64Array(C);
    const rvRef = new Float64Array(C).fill(1);
    const rm = Tensor.zeros([C]);
    const rv = Tensor.full([C], 1);
    const nbt = Tensor.zeros([1], { dtype: 'i32' });
    const M = 3 * 5 * 3;
    for (let step = 0; step < 4; step++) {
      const x = randomArray(shape, 50 + step, -2 + step, 3);
      const { mean, variance } = bnRef(x, shape, null, null, { training: true });
      for (let c = 0; c < C; c++) {
        rmRef[c] = 0.9 * rmRef[c] + 0.1 * mean[c];
        rvRef[c] = 0.9 * rvRef[c] + 0.1 * variance[c] * M / (M - 1);
      }
      scope(() => { batchNorm(tensor(x, shape), null, null, { runningMean: rm, runningVar: rv, numBatchesTracked: nbt }); });
    }
    assertClose(await rm.toArray(), rmRef, { rtol: 1e-5, atol: 1e-6 }, 'running_mean');
    assertClose(await rv.toArray(), rvRef, { rtol: 1e-5, atol: 1e-6 }, 'running_var');
    assert.is((await nbt.toArray())[0], 4);
    const x = randomArray(shape, 77);
    const gamma = randomArray([C], 78, 0.5, 1.5);
    const beta = randomArray([C], 79);
    const y = scope(() => batchNorm(tensor(x, shape), tensor(gamma, [C]), tensor(beta, [C]), { training: false, runningMean: rm, runningVar: rv, numBatchesTracked: nbt }));
    assertClose(await y.toArray(), bnRef(x, shape, gamma, beta, { training: false, runningMean: rmRef, runningVar: rvRef }).y, { rtol: 1e-4, atol: 1e-5 }, 'eval forward');
    assert.is((await nbt.toArray())[0], 4, 'eval does not count batches');
    for (const t of [rm, rv, nbt, y]) t.dispose();
  });
});

test('batchNorm variance stays accurate for a large mean (shifted sums)', async () => {
  const shape = [4, 3, 9, 9];
  const x = randomArray(shape, 90, -1, 1).map((v) => Math.fround(1000 + v));
  const y = scope(() => batchNorm(tensor(x, shape), null, null));
  assertClose(await y.toArray(), bnRef(x, shape, null, null, { training: true }).y, { rtol: 1e-3, atol: 2e-3 }, 'normalized');
  y.dispose();
});

test('batchNorm backward inside a larger graph leaves nothing behind', async () => {
  await noLeaks(async () => {
    const shape = [2, 4, 3, 3];
    const x = tensor(randomArray(shape, 1), shape, true);
    const g = tensor(randomArray([4], 2, 0.5, 1.5), [4], true);
    const b = tensor(randomArray([4], 3), [4], true);
    scope(() => {
      const y = batchNorm(x, g, b, { relu: true });
      sum(mul(y, y)).backward();
    });
    assert.ok(x.grad && g.grad && b.grad);
    for (const t of [x, g, b]) { t.grad!.dispose(); t.dispose(); }
  });
});

test('batchNorm errors', () => {
  scope(() => {
    const x = Tensor.zeros([1, 3]);
    assert.throws(() => batchNorm(x, null, null), /more than 1 value per channel/);
    assert.throws(() => batchNorm(Tensor.zeros([2, 3]), Tensor.zeros([4]), Tensor.zeros([4])), /gamma must be f32 with 3/);
    assert.throws(() => batchNorm(Tensor.zeros([2, 3]), null, null, { training: false }), /eval mode/);
  });
});

test.run();
