// Reductions: sum, mean, max, min over single, several (non-adjacent), all and negative axes,
// with and without keepDims, through the fast passes (one per reduced dim: rows or columns,
// vec4 or scalar, split into chunks when there are few outputs and enough elements;
// engine/ops/reduce-kernel.ts)
// and through the reference path's general kernel (an invocation per output for short
// reductions, a workgroup per output when the reduction has >= 256 elements).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import type { Shape, Tensor } from '../../engine/index.ts';
import { assertClose, gradCheck, randomArray, tensor } from '../helpers.ts';
import type { Tolerance } from '../helpers.ts';
import * as ref from '../reference.ts';

type Kind = 'sum' | 'mean' | 'max' | 'min';
const OPS: Record<Kind, (x: Tensor, axes?: number | readonly number[], opts?: E.ReduceOptions) => Tensor> = {
  sum: E.sum, mean: E.mean, max: E.max, min: E.min,
};

interface Case {
  shape: Shape;
  axes?: number | number[];
  keepDims?: boolean;
  /** Looser tolerance for long f32 sums. */
  tol?: Tolerance;
}

const CASES: Case[] = [
  { shape: [1] },
  { shape: [1], axes: 0, keepDims: true },
  { shape: [17], axes: 0 },
  { shape: [65] },
  { shape: [257], axes: -1 }, // a workgroup per output, one output
  { shape: [3, 5, 7], axes: 1 },
  { shape: [3, 5, 7], axes: [-1] },
  { shape: [3, 5, 7], axes: [0, 2] }, // non-adjacent
  { shape: [3, 5, 7], axes: [2, 0], keepDims: true },
  { shape: [3, 5, 7], axes: [-3, -2] },
  { shape: [3, 5, 7] },
  { shape: [3, 5, 7], keepDims: true },
  { shape: [2, 1, 3], axes: 1 }, // reducing a size-1 axis
  { shape: [4, 1, 5], axes: [0, 2], keepDims: true },
  { shape: [65, 17], axes: 1 }, // short reductions, many outputs
  { shape: [17, 65], axes: 0 },
  { shape: [1000, 3], axes: -1 },
  { shape: [3, 300], axes: 1, tol: { rtol: 1e-4, atol: 1e-4 } }, // workgroup per output, 3 outputs
  { shape: [16, 3, 20], axes: [0, 2], tol: { rtol: 1e-4, atol: 1e-4 } }, // workgroup per output, two reduced runs
  { shape: [3000], tol: { rtol: 1e-4, atol: 1e-4 } }, // long reduction to a scalar, too small to split: one vec4 row
  { shape: [3001], tol: { rtol: 1e-4, atol: 1e-4 } }, // the same with scalar loads
  { shape: [17, 64], axes: 0 }, // columns, four at a time (vec4)
  { shape: [2000, 8], axes: 0, tol: { rtol: 1e-4, atol: 1e-4 } }, // long columns, not split
  { shape: [5, 64, 7], axes: [0, 2] }, // scalar rows, then vec4 columns
  { shape: [6, 12, 20], axes: [0, 2], keepDims: true }, // vec4 rows, then columns (per-channel sums)
  { shape: [3, 4, 5, 6], axes: [0, 2] }, // two column passes
];

function outShapeOf(c: Case): number[] {
  const axes = ref.axesOf(c.axes, c.shape.length);
  return c.keepDims ? c.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : c.shape.filter((_, i) => !axes.includes(i));
}

for (const [kind, reference] of (['sum', 'mean', 'max', 'min'] as Kind[]).flatMap((k) => [[k, false], [k, true]] as const)) {
  test(`${kind}${reference ? ' (reference path)' : ''}: forward and backward over single, several, all and negative axes`, async () => {
    let seed = 10;
    E.setReferenceKernels(reference);
    try {
      await allCases(kind, seed);
    } finally {
      E.setReferenceKernels(false);
    }
  });
}

async function allCases(kind: Kind, seed: number): Promise<void> {
  for (const c of CASES) {
    seed++;
    const axes = ref.axesOf(c.axes, c.shape.length);
    const label = `${kind} [${c.shape}] axes ${JSON.stringify(c.axes)}${c.keepDims ? ' keepDims' : ''}`;
    const cpu = ref.reducer(kind, c.shape, axes);
    const expectShape = outShapeOf(c);
    await gradCheck({
      name: label, shapes: [c.shape], tol: c.tol,
      // max/min: distinct values well apart, so finite differences never cross a tie.
      inputs: kind === 'max' || kind === 'min' ? (sh) => ref.distinct(sh, seed) : undefined,
      gpu: (x) => {
        const y = c.axes === undefined && !c.keepDims ? OPS[kind](x) : OPS[kind](x, c.axes, { keepDims: c.keepDims });
        assert.equal([...y.shape], expectShape, `${label}: output shape`);
        return y;
      },
      cpu: (x) => cpu(x),
    }, seed);
  }
}

// Passes over at least 65536 elements (MIN_SPLIT_ELEMENTS) with few outputs are split into
// chunks and folded again by later passes; forward only (the backward does not depend on it).
const SPLIT_CASES: { shape: Shape; axes?: number[] }[] = [
  { shape: [70000] }, // vec4 rows in chunks, then a row
  { shape: [70001] }, // the same with scalar loads
  { shape: [9001, 8], axes: [0] }, // vec4 columns in chunks, then folded again
  { shape: [9001, 9], axes: [0] }, // scalar columns in chunks
  { shape: [3, 30000, 4], axes: [0, 1] }, // two reduced dims merged into one: vec4 columns in chunks
];

for (const kind of ['sum', 'max', 'min'] as const) {
  test(`${kind}: passes split into chunks (>= 65536 elements, few outputs) against float64`, async () => {
    let seed = 900;
    for (const c of SPLIT_CASES) {
      const axes = ref.axesOf(c.axes, c.shape.length);
      const data = kind === 'sum' ? randomArray(c.shape, seed++, 0, 1) : ref.distinct(c.shape, seed++);
      const x = tensor(data, c.shape);
      const y = OPS[kind](x, c.axes);
      assertClose(await y.toArray(), ref.reducer(kind, c.shape, axes)(data), { rtol: 1e-5, atol: 0 }, `${kind} [${c.shape}] axes ${JSON.stringify(c.axes)}`);
      x.dispose();
      y.dispose();
    }
  });
}

test('sum and mean of 70000 values against float64 (chunked passes)', async () => {
  const data = randomArray([70000], 77, 0, 1); // all positive: a meaningful relative error
  const x = tensor(data, [70000]);
  const s = E.sum(x);
  const m = E.mean(x);
  assert.equal([...s.shape], []);
  const exact = data.reduce((a, v) => a + v, 0);
  assertClose([await s.item()], [exact], { rtol: 1e-5, atol: 0 }, 'sum');
  assertClose([await m.item()], [exact / 70000], { rtol: 1e-5, atol: 0 }, 'mean');
  for (const t of [x, s, m]) t.dispose();
});

test('max/min ties: the gradient is shared equally among tied elements (torch.amax)', async () => {
  const shape: Shape = [3, 4];
  const data = [1, 3, 3, 2, 5, 5, 5, 0, -1, -1, -1, -1];
  const cases: { kind: 'max' | 'min'; axes?: number[] }[] = [
    { kind: 'max', axes: [1] }, { kind: 'min', axes: [1] }, { kind: 'max', axes: [0] }, { kind: 'min', axes: [0] },
    { kind: 'max' }, { kind: 'min' },
  ];
  let seed = 500;
  for (const c of cases) {
    const axes = ref.axesOf(c.axes, 2);
    const x = tensor(data, shape, true);
    const y = OPS[c.kind](x, c.axes);
    const g = randomArray(y.shape, seed++, 0.5, 1.5);
    const gT = tensor(g, y.shape);
    assertClose(await y.toArray(), ref.reduce(c.kind, data, shape, axes), {}, `${c.kind} ${c.axes} forward`);
    y.backward(gT);
    const expected = ref.extremumGrad(c.kind, data, shape, axes, g);
    assertClose(await x.grad!.toArray(), expected, {}, `${c.kind} axes ${c.axes} grad with ties`);
    for (const t of [x.grad!, x, y, gT]) t.dispose();
  }
  // Spot-check the reference itself on the obvious case: max of [1, 3, 3, 2] gives 1/2 to each 3.
  assert.equal([...ref.extremumGrad('max', [1, 3, 3, 2], [4], [0], [1])], [0, 0.5, 0.5, 0]);
});

test('max/min ties within 300 elements per output', async () => {
  const shape: Shape = [2, 300];
  const data = randomArray(shape, 91, -1, 1);
  for (const i of [5, 77, 299]) data[i] = 2; // three-way tie for row 0's max
  for (const i of [300, 301]) data[i] = -3; // two-way tie for row 1's min
  for (const kind of ['max', 'min'] as const) {
    const x = tensor(data, shape, true);
    const y = OPS[kind](x, 1);
    const g = randomArray([2], 92, 0.5, 1.5);
    const gT = tensor(g, [2]);
    assertClose(await y.toArray(), ref.reduce(kind, data, shape, [1]), {}, `${kind} forward`);
    y.backward(gT);
    assertClose(await x.grad!.toArray(), ref.extremumGrad(kind, data, shape, [1], g), {}, `${kind} grad with ties`);
    for (const t of [x.grad!, x, y, gT]) t.dispose();
  }
});

test('sum over a non-adjacent axis pair matches a hand-written loop', async () => {
  // Independent of the reference helper: out[j] = sum_i sum_k x[i, j, k] for [3, 5, 7].
  const data = randomArray([3, 5, 7], 123);
  const expected = new Float64Array(5);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) for (let k = 0; k < 7; k++) expected[j] += data[i * 35 + j * 7 + k];
  const x = tensor(data, [3, 5, 7]);
  const y = E.sum(x, [0, 2]);
  assertClose(await y.toArray(), expected, {}, 'sum [0, 2]');
  x.dispose();
  y.dispose();
});

test('reductions reject bad axes with a message naming the axis', () => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  assert.throws(() => E.sum(x, 2), /axis 2 is out of range .* rank 2/);
  assert.throws(() => E.max(x, -3), /axis -3 is out of range/);
  assert.throws(() => E.mean(x, [1, -1]), /repeated axis/);
  x.dispose();
});

test.run();
