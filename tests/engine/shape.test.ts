// Shape ops: reshape (a view), flatten, permute, transpose, slice, concat; forward, backward,
// and bit-exact copies of i32 data.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import { Tensor, engine } from '../../engine/index.ts';
import type { Shape } from '../../engine/index.ts';
import { assertClose, gradCheck, randomArray, tensor } from '../helpers.ts';
import * as ref from '../reference.ts';

test('reshape is a view: same storage, -1 inference, data unchanged, survives the source', async () => {
  const data = randomArray([2, 3, 4], 1);
  const x = tensor(data, [2, 3, 4]);
  const live = engine().pool.liveBytes;
  const y = E.reshape(x, [4, -1]);
  assert.equal([...y.shape], [4, 6]);
  assert.ok(y.buffer === x.buffer, 'reshape shares storage');
  assert.is(engine().pool.liveBytes, live, 'reshape allocates nothing');
  const z = E.reshape(x, [-1]);
  assert.equal([...z.shape], [24]);
  const w = E.reshape(y, [2, 2, -1, 3]);
  assert.equal([...w.shape], [2, 2, 2, 3]);
  x.dispose();
  assert.is(engine().pool.liveBytes, live, 'the views keep the storage alive');
  assertClose(await y.toArray(), data, { rtol: 0, atol: 0 }, 'view after the source was disposed');
  assertClose(await w.toArray(), data, { rtol: 0, atol: 0 }, 'view of a view');
  const held = engine().pool.liveBytes;
  for (const t of [y, z, w]) t.dispose();
  assert.is(engine().pool.liveBytes, held - 256, 'storage goes back when the last view is disposed');
});

test('reshape rejects incompatible sizes and ambiguous -1', () => {
  const x = tensor(randomArray([2, 3], 2), [2, 3]);
  assert.throws(() => E.reshape(x, [4, 2]), /cannot reshape .*\[2, 3\].*6 elements.*\[4, 2\]/);
  assert.throws(() => E.reshape(x, [4, -1]), /cannot reshape .*\[4, -1\]/);
  assert.throws(() => E.reshape(x, [-1, -1]), /cannot reshape .*\[-1, -1\].*only one dimension can be -1/);
  assert.throws(() => E.reshape(x, [-2, 3]), /invalid shape/);
  assert.throws(() => E.reshape(x, [0, -1]), /cannot reshape/);
  x.dispose();
});

test('reshape and flatten backward', async () => {
  await gradCheck({
    name: 'reshape [3,4,5] -> [5,-1]', shapes: [[3, 4, 5]],
    gpu: (x) => E.mul(E.reshape(x, [5, -1]), E.reshape(x, [5, -1])),
    cpu: (x) => x.map((v) => v * v),
  });
  await gradCheck({
    name: 'flatten [2,3,4]', shapes: [[2, 3, 4]],
    gpu: (x) => {
      const y = E.flatten(x);
      assert.equal([...y.shape], [2, 12]);
      return E.exp(y);
    },
    cpu: (x) => x.map(Math.exp),
  });
  const x = tensor(randomArray([2, 3, 4], 3), [2, 3, 4]);
  const f0 = E.flatten(x, 0);
  const f2 = E.flatten(x, 2);
  assert.equal([...f0.shape], [24]);
  assert.equal([...f2.shape], [2, 3, 4]);
  for (const t of [x, f0, f2]) t.dispose();
});

const PERMS: [Shape, number[]][] = [
  [[3, 5, 7], [2, 0, 1]],
  [[3, 5, 7], [1, 0, 2]],
  [[3, 5, 7], [0, 2, 1]],
  [[2, 3, 4, 5], [3, 1, 0, 2]],
  [[2, 3, 4, 5], [0, 2, 3, 1]],
  [[2, 1, 17, 3], [2, 3, 1, 0]],
  [[2, 3, 4, 5], [0, 1, 2, 3]],
];

test('permute rank 3 and 4: forward and backward', async () => {
  let seed = 20;
  for (const [shape, dims] of PERMS) {
    await gradCheck({
      name: `permute [${shape}] by [${dims}]`, shapes: [shape],
      gpu: (x) => {
        const y = E.permute(x, dims);
        assert.equal([...y.shape], dims.map((d) => shape[d]));
        return y;
      },
      cpu: (x) => ref.permute(x, shape, dims),
      tol: { rtol: 1e-6, atol: 1e-7 }, // a copy: exact up to the finite differences' rounding
    }, seed++);
  }
  // Negative dims count from the end.
  await gradCheck({
    name: 'permute [3,5,7] by [-1,0,-2]', shapes: [[3, 5, 7]],
    gpu: (x) => E.permute(x, [-1, 0, -2]),
    cpu: (x) => ref.permute(x, [3, 5, 7], [2, 0, 1]),
  }, seed++);
});

/** float64 flip of `dims` (an independent index walk, not strides). */
function flipRef(x: ArrayLike<number>, shape: Shape, dims: number[]): Float64Array {
  const out = new Float64Array(x.length);
  const st = ref.strides(shape);
  for (let i = 0; i < out.length; i++) {
    const c = ref.coords(i, shape);
    let src = 0;
    c.forEach((v, d) => { src += (dims.includes(d) ? shape[d] - 1 - v : v) * st[d]; });
    out[i] = x[src];
  }
  return out;
}

test('flip one or several axes (negative strides): forward and backward, and i32 bit-exact', async () => {
  let seed = 60;
  for (const [shape, dims] of [[[17], [0]], [[3, 5, 7], [1]], [[2, 3, 4, 5], [2, 3]], [[4, 1, 3], [0, 1, 2]]] as [Shape, number[]][]) {
    await gradCheck({
      name: `flip [${shape}] on [${dims}]`, shapes: [shape],
      gpu: (x) => E.flip(x, dims),
      cpu: (x) => flipRef(x, shape, dims),
      tol: { rtol: 1e-6, atol: 1e-7 },
    }, seed++);
  }
  const ints = [2147483647, -2147483648, 5, -7, 0, 123456789];
  const t = Tensor.fromArray(ints, [2, 3], { dtype: 'i32' });
  const f = E.flip(t, [-1]);
  assert.equal([...(await f.toArray())], [5, -2147483648, 2147483647, 123456789, 0, -7]);
  t.dispose();
  f.dispose();
});

test('permute rejects non-permutations', () => {
  const x = tensor(randomArray([2, 3, 4], 4), [2, 3, 4]);
  assert.throws(() => E.permute(x, [0, 1]), /not a permutation|axes/);
  assert.throws(() => E.permute(x, [0, 1, 1]), /permute/);
  assert.throws(() => E.permute(x, [0, 1, 3]), /permute/);
  assert.throws(() => E.permute(x, [-4, 1, 2]), /permute: axis -4 is out of range for a tensor of rank 3/);
  assert.throws(() => E.permute(x, [-3, 0, 1]), /permute: repeated axis/);
  x.dispose();
});

test('transpose: default last two axes, explicit and negative axes', async () => {
  const cases: [Shape, number | undefined, number | undefined, number[]][] = [
    [[17, 3], undefined, undefined, [1, 0]],
    [[2, 5, 3], undefined, undefined, [0, 2, 1]],
    [[2, 5, 3], 0, 2, [2, 1, 0]],
    [[2, 3, 4, 5], -4, 1, [1, 0, 2, 3]],
  ];
  let seed = 40;
  for (const [shape, d0, d1, perm] of cases) {
    await gradCheck({
      name: `transpose [${shape}] ${d0} ${d1}`, shapes: [shape],
      gpu: (x) => (d0 === undefined ? E.transpose(x) : E.transpose(x, d0, d1)),
      cpu: (x) => ref.permute(x, shape, perm),
    }, seed++);
  }
  const x = tensor([1, 2, 3], [3]);
  assert.throws(() => E.transpose(x), /transpose: axes -2, -1 out of range/);
  x.dispose();
});

interface SliceCase {
  shape: Shape;
  starts: number[];
  ends?: (number | undefined)[];
  begin: number[];
  end: number[];
}

const SLICES: SliceCase[] = [
  { shape: [17], starts: [3], ends: [11], begin: [3], end: [11] },
  { shape: [17], starts: [-5], begin: [12], end: [17] },
  { shape: [5, 7], starts: [1, 2], ends: [-1, -2], begin: [1, 2], end: [4, 5] },
  { shape: [5, 7], starts: [2], begin: [2, 0], end: [5, 7] }, // partial: axis 1 whole
  { shape: [5, 7], starts: [0, 3], ends: [undefined, 4], begin: [0, 3], end: [5, 4] },
  { shape: [3, 4, 5], starts: [1, 0, 1], ends: [2, -1, 5], begin: [1, 0, 1], end: [2, 3, 5] },
  { shape: [3, 4, 5], starts: [0, 1], ends: [3, 3], begin: [0, 1, 0], end: [3, 3, 5] },
  { shape: [65, 5], starts: [7, 1], ends: [64, 4], begin: [7, 1], end: [64, 4] },
];

test('slice: negative ends, partial axes, forward and backward', async () => {
  let seed = 60;
  for (const c of SLICES) {
    await gradCheck({
      name: `slice [${c.shape}] ${c.starts}:${c.ends ?? ''}`, shapes: [c.shape],
      gpu: (x) => {
        const y = E.slice(x, c.starts, c.ends);
        assert.equal([...y.shape], c.end.map((e, i) => e - c.begin[i]));
        return y;
      },
      cpu: (x) => ref.slice(x, c.shape, c.begin, c.end),
    }, seed++);
  }
});

test('slice rejects out-of-bounds ranges', () => {
  const x = tensor(randomArray([5, 7], 5), [5, 7]);
  assert.throws(() => E.slice(x, [0, 0], [6, 7]), /slice: range 0:6 of axis 0 is out of bounds/);
  assert.throws(() => E.slice(x, [4, 0], [2]), /axis 0/);
  assert.throws(() => E.slice(x, [0, 0, 0]), /slice: 3 ranges/);
  x.dispose();
});

test('concat: axis 0, 1, -1, three inputs of different sizes, forward and backward', async () => {
  const cases: [Shape[], number][] = [
    [[[2, 3], [4, 3]], 0],
    [[[2, 3], [2, 5]], 1],
    [[[3, 2, 1], [3, 2, 4], [3, 2, 2]], -1],
    [[[1, 5], [17, 5], [3, 5]], 0],
    [[[2, 1, 3], [2, 4, 3], [2, 2, 3]], 1],
  ];
  let seed = 80;
  for (const [shapes, axis] of cases) {
    const ax = axis < 0 ? axis + shapes[0].length : axis;
    await gradCheck({
      name: `concat ${shapes.map((s) => `[${s}]`).join(' ')} axis ${axis}`, shapes,
      gpu: (...xs) => E.concat(xs, axis),
      cpu: (...xs) => ref.concat(xs, shapes, ax),
    }, seed++);
  }
  // Only some inputs require grad.
  await gradCheck({
    name: 'concat partial grad', shapes: [[2, 3], [2, 2], [2, 4]], check: [1],
    gpu: (...xs) => E.concat(xs, 1),
    cpu: (...xs) => ref.concat(xs, [[2, 3], [2, 2], [2, 4]], 1),
  }, seed++);
});

test('concat rejects mismatched shapes and dtypes', () => {
  const a = tensor(randomArray([2, 3], 6), [2, 3]);
  const b = tensor(randomArray([3, 3], 7), [3, 3]);
  const c = Tensor.fromArray([1, 2, 3], [1, 3], { dtype: 'i32' });
  assert.throws(() => E.concat([a, b], 1), /concat: .*\[3, 3\] does not match .*\[2, 3\] outside axis 1/);
  assert.throws(() => E.concat([a, c], 0), /concat: dtype mismatch/);
  assert.throws(() => E.concat([a, b], 2), /concat: axis 2 out of range/);
  assert.throws(() => E.concat([]), /no tensors/);
  for (const t of [a, b, c]) t.dispose();
});

test('permute, transpose, slice and concat copy i32 tensors bit-exactly', async () => {
  const special = [2147483647, -2147483648, -1, 0, 1, 2147483646, -2147483647, 16777217, -16777217, 123456789];
  const shape: Shape = [2, 3, 5];
  // The specials, then large values of both signs (Knuth's multiplicative hash, wrapped to i32).
  const data = Int32Array.from({ length: 30 }, (_, i) => (i < special.length ? special[i] : Math.imul(i, 2654435761)));
  const x = Tensor.fromArray(data, shape, { dtype: 'i32' });
  assert.equal([...(await x.toArray())], [...data], 'round trip');

  const p = E.permute(x, [2, 0, 1]);
  assert.is(p.dtype, 'i32');
  assert.equal([...(await p.toArray())], [...ref.permute(data, shape, [2, 0, 1])], 'permute');

  const t = E.transpose(x, 0, 2);
  assert.equal([...(await t.toArray())], [...ref.permute(data, shape, [2, 1, 0])], 'transpose');

  const s = E.slice(x, [1, 1, 1], [2, -1, 5]);
  assert.is(s.dtype, 'i32');
  assert.equal([...(await s.toArray())], [...ref.slice(data, shape, [1, 1, 1], [2, 2, 5])], 'slice');

  const other = Int32Array.from([-2147483648, 2147483647, -5, 7, 2147483600, -2147483600]);
  const y = Tensor.fromArray(other, [2, 3, 1], { dtype: 'i32' });
  const c = E.concat([x, y, x], -1);
  assert.is(c.dtype, 'i32');
  assert.equal([...c.shape], [2, 3, 11]);
  assert.equal([...(await c.toArray())], [...ref.concat([data, other, data], [shape, [2, 3, 1], shape], 2)], 'concat');

  const r = E.reshape(x, [5, 6]);
  assert.equal([...(await r.toArray())], [...data], 'reshape');
  for (const u of [x, p, t, s, y, c, r]) u.dispose();
});

test('permute and slice copy f32 bit patterns exactly (-0, denormals, infinities)', async () => {
  const bits = Uint32Array.from([0x00000002, 0x80000000, 0x00000001, 0xff800000, 0x7f7fffff, 0x3f800000]);
  const f = new Float32Array(bits.buffer);
  const x = Tensor.fromArray(f, [2, 3]);
  const p = E.transpose(x);
  const got = new Uint32Array((await p.toArray()).buffer);
  assert.equal([...got], [...ref.permute(bits, [2, 3], [1, 0])]);
  const s = E.slice(x, [0, 1]);
  assert.equal([...new Uint32Array((await s.toArray()).buffer)], [...ref.slice(bits, [2, 3], [0, 1], [2, 3])]);
  for (const t of [x, p, s]) t.dispose();
});

test.run();
