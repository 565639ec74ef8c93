import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MinMaxObserver, Tensor, batchNorm, mulScalar, scope, setReferenceKernels, sum, mul } from '../../engine/index.ts';
import type { BatchNormOptions, Shape } from '../../engine/index.ts';
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

// Shapes cover both kernel layouts (H*W % 4 == 0: aligned vec4 units; otherwise element by
// element, units crossing rows and channels, H*W of 1, 2 and 3 included), a partial last vec4
// (sizes not a multiple of 4), and per-channel sums split into several parts.
const cases: { shape: Shape; relu: boolean }[] = [
  { shape: [3, 5, 3, 7], relu: false },
  { shape: [4, 3, 16, 16], relu: true }, // 4 parts per channel, aligned
  { shape: [8, 2, 9, 9], relu: false }, // 2 parts per channel, element by element
  { shape: [5, 3, 2], relu: true }, // H*W = 2
  { shape: [7, 2, 3], relu: false }, // H*W = 3
  { shape: [1, 3, 5, 5], relu: false },
  { shape: [2, 3, 4, 6], relu: false }, // HW % 4 == 0: the vec4 element-wise passes
  { shape: [3, 2, 6, 6], relu: true }, // the same, a row's 9 units in two uneven chunks
  { shape: [3, 2, 2, 2], relu: true },
  { shape: [2, 3, 13, 11], relu: true },
  { shape: [1, 2, 17, 19], relu: false },
  { shape: [6, 7], relu: false },
  { shape: [5, 3], relu: true },
  { shape: [6, 8], relu: true }, // [N, C], C % 4 == 0: four channels an invocation
  { shape: [70, 12], relu: false }, // the same over two parts of the rows
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

// ---- the fused op: residual, ReLU and the observer or fake quantization that follows ----

/** float64 reference of relu(bn(x) + r) (training), for finite differences. */
function bnResidualRef(x: ArrayLike<number>, r: ArrayLike<number>, shape: Shape, gamma: ArrayLike<number>, beta: ArrayLike<number>, relu: boolean): Float64Array {
  const { y } = bnRef(x, shape, gamma, beta, { training: true });
  return y.map((v, i) => (relu ? Math.max(v + r[i], 0) : v + r[i]));
}

for (const { shape, relu } of [{ shape: [2, 3, 4, 4], relu: true }, { shape: [3, 2, 3, 5], relu: true }, { shape: [4, 3, 2, 2], relu: false }]) {
  test(`batchNorm + residual${relu ? ' + relu' : ''} [${shape.join(', ')}]: forward and grads of x, gamma, beta, residual`, async () => {
    const C = shape[1];
    await gradCheck({
      name: 'batchNorm residual', shapes: [shape, [C], [C], shape],
      gpu: (x, g, b, r) => batchNorm(x, g, b, { relu, residual: r }),
      cpu: (x, g, b, r) => bnResidualRef(x, r, shape, g, b, relu),
      inputs: (s, k) => (k === 1 ? randomArray(s, 7, 0.5, 1.5) : randomArray(s, 21 + k, -1, 1)),
      eps: relu ? 1e-6 : 1e-3,
    });
  });
}

type ActCase = 'none' | 'observe' | 'quantize';

interface FusedRun {
  y: Float64Array;
  grads: Float64Array[];
  range: { min: number; max: number };
  running: Float64Array[];
}

/** One forward and backward of the fused op (or, in reference mode, of the chain it replaces)
 * on fresh copies of the data; returns everything that must agree between the two. */
async function runFused(shape: Shape, relu: boolean, withResidual: boolean, act: ActCase, training: boolean, seed: number): Promise<FusedRun> {
  const C = shape[1];
  const data = [randomArray(shape, seed), randomArray([C], seed + 1, 0.5, 1.5), randomArray([C], seed + 2), randomArray(shape, seed + 3)];
  const dyData = randomArray(shape, seed + 4);
  const [x, gamma, beta, r] = data.map((d, k) => tensor(d, k === 1 || k === 2 ? [C] : shape, true));
  const runningMean = tensor(randomArray([C], seed + 5, -0.2, 0.2), [C]);
  const runningVar = tensor(randomArray([C], seed + 6, 0.5, 1.5), [C]);
  const observer = new MinMaxObserver();
  // Quantize with a range observed on the output of a calibrating pass, as SSQL does (its FP
  // pass calibrates, its quantized pass uses the range); that pass runs with half the gamma, so
  // the quantized pass overshoots the range and the straight-through mask cuts.
  const optsFor = (a: ActCase): BatchNormOptions => ({
    training, relu, runningMean, runningVar, residual: withResidual ? r : null,
    act: a === 'none' ? null : a === 'observe' ? { kind: 'observe', observer } : { kind: 'quantize', observer, bits: 4 },
  });
  if (act === 'quantize') scope(() => { batchNorm(x, mulScalar(gamma, 0.5), beta, optsFor('observe')); });
  const dy = tensor(dyData, shape);
  const y = batchNorm(x, gamma, beta, optsFor(act));
  y.backward(dy);
  const out: FusedRun = {
    y: Float64Array.from(await y.toArray()),
    grads: await Promise.all([x, gamma, beta, ...(withResidual ? [r] : [])].map(async (t) => Float64Array.from(await t.grad!.toArray()))),
    range: await observer.read(),
    running: [Float64Array.from(await runningMean.toArray()), Float64Array.from(await runningVar.toArray())],
  };
  for (const t of [x, gamma, beta, r]) { t.grad?.dispose(); t.dispose(); }
  for (const t of [dy, y, runningMean, runningVar]) t.dispose();
  observer.dispose();
  return out;
}

test('fused batchNorm (+ residual, ReLU, observer or fake quantization) equals the unfused chain', async () => {
  const shapes: Shape[] = [[2, 3, 4, 4], [3, 2, 3, 5], [2, 2, 9, 9], [4, 3, 16, 16], [2, 3, 6, 6], [6, 5], [5, 8]];
  // Eval mode once per shape kind is enough: the element-wise passes are the training ones.
  let seed = 300;
  let cases = 0;
  for (const shape of shapes) {
    for (const withResidual of [false, true]) {
      for (const relu of [false, true]) {
        for (const act of ['none', 'observe', 'quantize'] as ActCase[]) {
          if (!withResidual && act === 'none') continue; // the plain op: the tests above
          for (const training of shape.length === 4 && shape[3] === 16 ? [true] : [true, false]) {
            seed += 10;
            const what = `[${shape.join(', ')}]${withResidual ? ' +residual' : ''}${relu ? ' +relu' : ''} +${act}${training ? '' : ' eval'}`;
            const fused = await runFused(shape, relu, withResidual, act, training, seed);
            setReferenceKernels(true);
            let chain: FusedRun;
            try {
              chain = await runFused(shape, relu, withResidual, act, training, seed);
            } finally {
              setReferenceKernels(false);
            }
            // The same arithmetic in the same order: equal up to the last bit or two.
            const tight = { rtol: 1e-6, atol: 1e-7 };
            assertClose(fused.y, chain.y, tight, `${what} forward`);
            fused.grads.forEach((gr, k) => assertClose(gr, chain.grads[k], tight, `${what} grad of ${['x', 'gamma', 'beta', 'residual'][k]}`));
            assert.equal(fused.range, chain.range, `${what} observed range`);
            fused.running.forEach((v, k) => assertClose(v, chain.running[k], tight, `${what} running ${k ? 'var' : 'mean'}`));
            if (act === 'quantize') {
              // The quantizer did quantize (at most 16 levels), and its range was exceeded, so
              // the straight-through mask cut: without a ReLU, the residual's gradient (g')
              // is zero only there.
              assert.ok(new Set(fused.y).size <= 16, `${what}: ${new Set(fused.y).size} distinct values at 4 bits`);
              if (withResidual && !relu) assert.ok(fused.grads[3].some((v) => v === 0), `${what}: the straight-through mask cut nothing`);
            }
            cases++;
          }
        }
      }
    }
  }
  assert.ok(cases >= 70);
});

test('fused observer records the min and max of the fused output', async () => {
  const shape = [3, 4, 5, 5];
  const x = tensor(randomArray(shape, 41, -2, 2), shape);
  const r = tensor(randomArray(shape, 42, -1, 1), shape);
  const observer = new MinMaxObserver();
  const y = batchNorm(x, null, null, { relu: true, residual: r, act: { kind: 'observe', observer } });
  const v = await y.toArray();
  const range = await observer.read();
  assert.is(range.min, Math.min(...v));
  assert.is(range.max, Math.max(...v));
  assert.ok(range.min === 0 && range.max > 0);
  for (const t of [x, r, y]) t.dispose();
  observer.dispose();
});

test('fused batchNorm errors name the bad argument', () => {
  scope(() => {
    const x = Tensor.zeros([2, 3, 4]);
    assert.throws(() => batchNorm(x, null, null, { residual: Tensor.zeros([2, 3, 5]) }), /residual .*\[2, 3, 5\].* does not match input .*\[2, 3, 4\]/);
    const observer = new MinMaxObserver();
    assert.throws(() => batchNorm(x, null, null, { act: { kind: 'quantize', observer, bits: 17 } }), /bit-width 17/);
    observer.dispose();
  });
});

test.run();
