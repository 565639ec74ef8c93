// Element-wise ops: every row of the engine's unary and binary tables, the scalar variants and
// broadcastTo, forward against float64 references and backward against finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import type { Shape, Tensor } from '../../engine/index.ts';
import { binaryOps, unaryOps } from '../../engine/ops/elementwise.ts';
import { assertClose, gradCheck, randomArray, size, tensor, throwsWith } from '../helpers.ts';
import * as ref from '../reference.ts';

const SIZES: Shape[] = [[1], [3], [17], [65], [257]];

type Gen = (shape: Shape, seed: number) => Float64Array;
const uniform = (lo: number, hi: number): Gen => (shape, seed) => randomArray(shape, seed, lo, hi);
const awayFromZero = (lo: number, hi: number): Gen => (shape, seed) => ref.awayFromZero(shape, seed, lo, hi);
/** Values away from 0 with every third element exactly 0 (sign(0) must be 0). */
const withZeros: Gen = (shape, seed) => ref.awayFromZero(shape, seed, 0.1, 2).map((v, i) => (i % 3 === 1 ? 0 : v));

interface UnaryCase {
  gpu: (x: Tensor, s: number) => Tensor;
  cpu: (x: number, s: number) => number;
  input: Gen;
  /** Scalar arguments to try (ops without one ignore it). */
  scalars?: number[];
  differentiable: boolean;
}

// Keyed by the engine's table names, plus subScalar (a wrapper over addScalar).
const UNARY: Record<string, UnaryCase> = {
  neg: { gpu: (x) => E.neg(x), cpu: (x) => -x, input: uniform(-2, 2), differentiable: true },
  relu: { gpu: (x) => E.relu(x), cpu: (x) => Math.max(x, 0), input: awayFromZero(0.05, 2), differentiable: true },
  exp: { gpu: (x) => E.exp(x), cpu: Math.exp, input: uniform(-2, 2), differentiable: true },
  log: { gpu: (x) => E.log(x), cpu: Math.log, input: uniform(0.2, 3), differentiable: true },
  sqrt: { gpu: (x) => E.sqrt(x), cpu: Math.sqrt, input: uniform(0.2, 3), differentiable: true },
  abs: { gpu: (x) => E.abs(x), cpu: Math.abs, input: awayFromZero(0.05, 2), differentiable: true },
  sign: { gpu: (x) => E.sign(x), cpu: Math.sign, input: withZeros, differentiable: false },
  addScalar: { gpu: (x, s) => E.addScalar(x, s), cpu: (x, s) => x + s, input: uniform(-1, 1), scalars: [0.75, -3], differentiable: true },
  subScalar: { gpu: (x, s) => E.subScalar(x, s), cpu: (x, s) => x - s, input: uniform(-1, 1), scalars: [0.75, -2], differentiable: true },
  mulScalar: { gpu: (x, s) => E.mulScalar(x, s), cpu: (x, s) => x * s, input: uniform(-1, 1), scalars: [-1.5, 0], differentiable: true },
  rsubScalar: { gpu: (x, s) => E.rsubScalar(s, x), cpu: (x, s) => s - x, input: uniform(-1, 1), scalars: [2.5], differentiable: true },
  divScalar: { gpu: (x, s) => E.divScalar(x, s), cpu: (x, s) => x / s, input: uniform(-1, 1), scalars: [3, -0.25], differentiable: true },
  powScalar: { gpu: (x, s) => E.powScalar(x, s), cpu: Math.pow, input: uniform(0.2, 3), scalars: [2.5, -1.5, 0.5, 2], differentiable: true },
};

test('every unary op in the engine table has a test case', () => {
  const missing = Object.keys(unaryOps).filter((name) => !(name in UNARY));
  assert.equal(missing, [], `unary ops without a test: ${missing.join(', ')}`);
});

for (const [name, c] of Object.entries(UNARY)) {
  test(`unary ${name}: forward and backward, sizes ${SIZES.map((s) => s[0]).join('/')}`, async () => {
    let seed = 1;
    for (const s of c.scalars ?? [0]) {
      for (const shape of SIZES) {
        seed++;
        const label = `${name}(s=${s}) [${shape}]`;
        if (c.differentiable) {
          await gradCheck({
            name: label, shapes: [shape],
            inputs: (sh) => c.input(sh, seed),
            gpu: (x) => c.gpu(x, s),
            cpu: (x) => x.map((v) => c.cpu(v, s)),
          }, seed);
        } else {
          const data = c.input(shape, seed);
          const x = tensor(data, shape, true);
          const y = c.gpu(x, s);
          assertClose(await y.toArray(), data.map((v) => c.cpu(v, s)), {}, label);
          assert.is(y.requiresGrad, false, `${label}: a piecewise-constant op records no gradient`);
          assert.is(y.node, null);
          x.dispose();
          y.dispose();
        }
      }
    }
  });
}

test('powScalar with negative bases: integer exponents keep the sign (PyTorch), others give NaN', async () => {
  for (const s of [3, 2, -1, -2]) {
    await gradCheck({
      name: `powScalar(s=${s}) negative base`, shapes: [[17]],
      inputs: (sh) => ref.awayFromZero(sh, 40 + s, 0.5, 2),
      gpu: (x) => E.powScalar(x, s),
      cpu: (x) => x.map((v) => Math.pow(v, s)),
    }, 7);
  }
  const x = tensor([-2, -2, -3, 2, -0.5], [5]);
  const cube = E.powScalar(x, 3);
  assertClose(await cube.toArray(), [-8, -8, -27, 8, -0.125], {}, 'x^3');
  const root = E.powScalar(x, 0.5);
  assertClose(await root.toArray(), [NaN, NaN, NaN, Math.SQRT2, NaN], {}, 'x^0.5');
  for (const t of [x, cube, root]) t.dispose();
});

interface BinaryCase {
  gpu: (a: Tensor, b: Tensor) => Tensor;
  cpu: (a: number, b: number) => number;
  inputs: [Gen, Gen];
  differentiable: boolean;
}

/** Values on a grid of step 0.02, offset by half a step for the second operand: any a and b
 * differ by at least 0.01 (no ties or near-ties for maximum/minimum). */
const gridA: Gen = (shape, seed) => randomArray(shape, seed, -1, 1).map((v) => Math.fround(Math.round(v / 0.02) * 0.02));
const gridB: Gen = (shape, seed) => randomArray(shape, seed, -1, 1).map((v) => Math.fround((Math.round(v / 0.02) + 0.5) * 0.02));
const smallInts: Gen = (shape, seed) => ref.randomInts(shape, seed, -1, 1);
const compare = (f: (a: number, b: number) => boolean) => (a: number, b: number) => (f(a, b) ? 1 : 0);

const BINARY: Record<string, BinaryCase> = {
  add: { gpu: E.add, cpu: (a, b) => a + b, inputs: [uniform(-1, 1), uniform(-1, 1)], differentiable: true },
  sub: { gpu: E.sub, cpu: (a, b) => a - b, inputs: [uniform(-1, 1), uniform(-1, 1)], differentiable: true },
  mul: { gpu: E.mul, cpu: (a, b) => a * b, inputs: [uniform(-1, 1), uniform(-1, 1)], differentiable: true },
  div: { gpu: E.div, cpu: (a, b) => a / b, inputs: [uniform(-1, 1), awayFromZero(0.5, 2)], differentiable: true },
  pow: { gpu: E.pow, cpu: Math.pow, inputs: [uniform(0.3, 2), uniform(-2, 2)], differentiable: true },
  maximum: { gpu: E.maximum, cpu: Math.max, inputs: [gridA, gridB], differentiable: true },
  minimum: { gpu: E.minimum, cpu: Math.min, inputs: [gridB, gridA], differentiable: true },
  equal: { gpu: E.equal, cpu: compare((a, b) => a === b), inputs: [smallInts, smallInts], differentiable: false },
  greater: { gpu: E.greater, cpu: compare((a, b) => a > b), inputs: [smallInts, smallInts], differentiable: false },
  greaterEqual: { gpu: E.greaterEqual, cpu: compare((a, b) => a >= b), inputs: [smallInts, smallInts], differentiable: false },
  less: { gpu: E.less, cpu: compare((a, b) => a < b), inputs: [smallInts, smallInts], differentiable: false },
  lessEqual: { gpu: E.lessEqual, cpu: compare((a, b) => a <= b), inputs: [smallInts, smallInts], differentiable: false },
  winShare: { gpu: E.winShare, cpu: (a, b) => (a > b ? 1 : a === b ? 0.5 : 0), inputs: [smallInts, smallInts], differentiable: false },
  // The gradient of relu: a = upstream gradient, b = relu's input (0 counts as not positive).
  reluBackward: { gpu: E.reluBackward, cpu: (g, x) => (x > 0 ? g : 0), inputs: [uniform(-1, 1), smallInts], differentiable: false },
};

const PAIRS: [Shape, Shape][] = [
  ...SIZES.map((s): [Shape, Shape] => [s, s]),
  [[17, 3], [3]],
  [[3], [17, 3]],
  [[4, 1, 5], [3, 1]],
  [[1], [65]],
  [[65], [1]],
];

test('every binary op in the engine table has a test case', () => {
  const missing = Object.keys(binaryOps).filter((name) => !(name in BINARY));
  assert.equal(missing, [], `binary ops without a test: ${missing.join(', ')}`);
});

for (const [name, c] of Object.entries(BINARY)) {
  test(`binary ${name}: forward and backward, same shapes and broadcasting`, async () => {
    let seed = 100;
    for (const [sa, sb] of PAIRS) {
      seed += 2;
      const label = `${name} [${sa}] [${sb}]`;
      const outShape = ref.broadcastShape(sa, sb);
      const gen = (sh: Shape, k: number) => c.inputs[k](sh, seed + k);
      const cpu = (a: Float64Array, b: Float64Array) => ref.binary(c.cpu, a, sa, b, sb);
      if (c.differentiable) {
        await gradCheck({
          name: label, shapes: [sa, sb], inputs: gen, cpu,
          gpu: (a, b) => {
            const y = c.gpu(a, b);
            assert.equal([...y.shape], outShape, `${label}: output shape`);
            return y;
          },
        }, seed);
      } else {
        const da = gen(sa, 0);
        const db = gen(sb, 1);
        const a = tensor(da, sa, true);
        const b = tensor(db, sb, true);
        const y = c.gpu(a, b);
        assert.equal([...y.shape], outShape, `${label}: output shape`);
        const expected = cpu(da, db);
        assertClose(await y.toArray(), expected, { rtol: 0, atol: 0 }, label);
        assert.is(y.requiresGrad, false, `${label}: records no gradient`);
        for (const t of [a, b, y]) t.dispose();
      }
    }
  });
}

test('maximum/minimum split the gradient evenly at ties, as PyTorch does', async () => {
  const a = tensor([1, 2, 3, -1], [4], true);
  const b = tensor([1, 0, 3, 5], [4], true);
  const mx = E.maximum(a, b);
  mx.backward(tensor([2, 2, 4, 2], [4]));
  assert.equal([...(await a.grad!.toArray())], [1, 2, 2, 0]);
  assert.equal([...(await b.grad!.toArray())], [1, 0, 2, 2]);
  const c = tensor([1, 2], [2], true);
  const d = tensor([1, 0], [2], true);
  E.minimum(c, d).backward(tensor([2, 2], [2]));
  assert.equal([...(await c.grad!.toArray())], [1, 0]);
  assert.equal([...(await d.grad!.toArray())], [1, 2]);
  for (const t of [a, b, mx, c, d]) { t.grad?.dispose(); t.dispose(); }
});

test('comparisons see ties: equal/greaterEqual/lessEqual give 1 on equal elements', async () => {
  const a = tensor([1, 2, 3, -1], [4]);
  const b = tensor([1, 3, 2, -1], [4]);
  const outs = { equal: E.equal(a, b), greater: E.greater(a, b), greaterEqual: E.greaterEqual(a, b), less: E.less(a, b), lessEqual: E.lessEqual(a, b) };
  const av = [1, 2, 3, -1];
  const bv = [1, 3, 2, -1];
  const cpu = { equal: (x: number, y: number) => x === y, greater: (x: number, y: number) => x > y, greaterEqual: (x: number, y: number) => x >= y, less: (x: number, y: number) => x < y, lessEqual: (x: number, y: number) => x <= y };
  for (const [k, t] of Object.entries(outs)) {
    const f = cpu[k as keyof typeof cpu];
    assert.equal([...(await t.toArray())], av.map((x, i) => (f(x, bv[i]) ? 1 : 0)), k);
    t.dispose();
  }
  a.dispose();
  b.dispose();
});

test('pow with a negative base and integer exponent follows PyTorch: (-2)^3 = -8', async () => {
  const a = tensor([-2, -2, -3, -0.5, 2, -2], [6]);
  const b = tensor([3, 2, -1, -2, 0.5, 0.5], [6]);
  const y = E.pow(a, b);
  // JavaScript's Math.pow agrees with PyTorch here, NaN for a fractional power of a negative base.
  assertClose(await y.toArray(), [-8, 4, -1 / 3, 4, Math.SQRT2, NaN], {}, 'pow');
  for (const t of [a, b, y]) t.dispose();
  // Gradient with respect to the base (the exponent's gradient needs log(a), undefined here).
  for (const [sa, sb] of [[[17], [17]], [[4, 3], [3]]] as [Shape, Shape][]) {
    await gradCheck({
      name: `pow negative base [${sa}] [${sb}]`, shapes: [sa, sb], check: [0],
      inputs: (sh, k) => (k === 0 ? ref.awayFromZero(sh, 61, 0.5, 1.5) : ref.randomInts(sh, 62, -3, 3)),
      gpu: E.pow,
      cpu: (x, e) => ref.binary(Math.pow, x, sa, e, sb),
    }, 3);
  }
});

test('broadcastTo: forward and backward (sums the gradient back)', async () => {
  const cases: [Shape, Shape][] = [[[3, 1], [2, 3, 4]], [[1], [17]], [[5], [4, 5]], [[4, 1, 5], [2, 4, 3, 5]], [[3, 2], [3, 2]]];
  let seed = 300;
  for (const [from, to] of cases) {
    await gradCheck({
      name: `broadcastTo [${from}] -> [${to}]`, shapes: [from],
      gpu: (x) => {
        const y = E.broadcastTo(x, to);
        assert.equal([...y.shape], [...to]);
        return y;
      },
      cpu: (x) => ref.broadcastTo(x, from, to),
    }, seed++);
  }
  const x = tensor([1, 2, 3], [3]);
  assert.throws(() => E.broadcastTo(x, [2, 4]), /\[3\].*\[2, 4\]/);
  x.dispose();
});

test('a binary op on strided broadcast operands writes every element (257 x 3 by 3)', async () => {
  // 771 elements: several workgroups of the strided path; poisoned outputs catch gaps.
  const sa: Shape = [257, 3];
  const da = randomArray(sa, 5);
  const db = randomArray([3], 6);
  const a = tensor(da, sa);
  const b = tensor(db, [3]);
  const y = E.mul(a, b);
  assert.is(size(y.shape), 771);
  assertClose(await y.toArray(), ref.binary((p, q) => p * q, da, sa, db, [3]), {}, 'mul');
  for (const t of [a, b, y]) t.dispose();
});

// The fast path's operand modes (shaders/elementwise.wgsl map4): contiguous, a single element,
// a per-channel vector broadcast over runs of H*W (one value per vec4, also when a run is a
// single vec4 and one invocation's vec4s cross many channels), a row vector of D % 4 == 0, on
// either side, and a value per lane for runs that are not whole vec4s; sizes that leave a
// partial last vec4 and span several workgroups; and operands the fast path must refuse
// (non-adjacent broadcast dims), which fall back to the general kernel. Each against float64 and against the reference path (the strided kernel).
test('element-wise fast path: every operand mode, on both sides, against float64 and the reference path', async () => {
  const pairs: [Shape, Shape][] = [
    [[3, 5, 40, 40], [5, 1, 1]], // channel, 6000 vec4s: several workgroups
    [[2, 3, 4, 4], [1, 3, 1, 1]],
    [[2, 3, 2, 2], [3, 1, 1]], // channel runs of exactly one vec4
    [[3, 5, 8], [5, 1]],
    [[6, 8], [6, 1]], // a column vector is a channel of 8
    [[5, 1, 1], [3, 5, 4, 4]], // channel on A's side
    [[5, 12], [12]], // row
    [[12], [7, 12]], // row on A's side
    [[3, 7, 9], [1]], // one element (189: a partial last vec4)
    [[1], [3, 7, 9]],
    [[2, 3, 5, 5], [3, 1, 1]], // runs of 25: a channel per lane
    [[3, 7, 2], [7, 1]], // runs of 2: several channels in one vec4
    [[5, 3, 1], [3, 1]], // runs of 1 and 3 channels (a row of odd length)
    [[2, 3, 5, 7], [5, 1]], // one broadcast dim inside two: channel 5, runs of 7
    [[4, 6, 8], [4, 1, 8]], // broadcast dims not adjacent: general kernel
    [[257, 3], [257, 3]], // contiguous, 771 elements
  ];
  let seed = 900;
  for (const [sa, sb] of pairs) {
    const da = randomArray(sa, seed++);
    const db = randomArray(sb, seed++);
    const expected = ref.binary((p, q) => p * q + p, da, sa, db, sb);
    for (const reference of [false, true]) {
      E.setReferenceKernels(reference);
      try {
        const a = tensor(da, sa);
        const b = tensor(db, sb);
        const ab = E.mul(a, b);
        const y = E.add(ab, a);
        assertClose(await y.toArray(), expected, {}, `a * b + a, [${sa}] and [${sb}]${reference ? ' (reference path)' : ''}`);
        for (const t of [a, b, ab, y]) t.dispose();
      } finally {
        E.setReferenceKernels(false);
      }
    }
  }
});

test('addN: 1 to 9 tensors summed left to right, bit-equal to chained adds, at awkward sizes; shape errors', async () => {
  let seed = 1200;
  for (const shape of [[1], [3], [17], [7, 9], [4099]] as Shape[]) {
    for (const count of [1, 2, 3, 4, 5, 7, 9]) {
      const data = Array.from({ length: count }, () => randomArray(shape, seed++, -3, 3));
      const ts = data.map((d) => tensor(d, shape));
      const sum = E.addN(ts);
      let chained = E.mulScalar(ts[0], 1);
      for (const t of ts.slice(1)) {
        const next = E.add(chained, t);
        chained.dispose();
        chained = next;
      }
      const got = await sum.toArray();
      const want = await chained.toArray();
      const where = `addN of ${count} x [${shape}]`;
      assert.equal(Array.from(got), Array.from(want), `${where}: not bit-equal to chained adds`);
      assertClose(got, data[0].map((_, i) => data.reduce((s, d) => s + d[i], 0)), { rtol: 1e-5, atol: 1e-5 }, where);
      for (const t of [...ts, sum, chained]) t.dispose();
    }
  }
  const a = tensor([1, 2, 3], [3]);
  const b = tensor([1, 2, 3, 4], [4]);
  throwsWith(() => E.addN([a, b]), /addN: .*\[4\].* does not match .*\[3\]/);
  throwsWith(() => E.addN([]), /addN: no tensors/);
  a.dispose();
  b.dispose();
});

test('addN backward: every input gets the output gradient', async () => {
  await gradCheck({
    name: 'addN', shapes: [[5, 3], [5, 3], [5, 3], [5, 3], [5, 3]],
    gpu: (...xs) => E.addN(xs),
    cpu: (...xs) => xs[0].map((_, i) => xs.reduce((s, x) => s + x[i], 0)),
  });
});

test.run();
