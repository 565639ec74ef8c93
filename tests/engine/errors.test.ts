// Misuse fails loudly, with a message that names the problem (shapes, dtypes, axes), and output
// poisoning makes unwritten elements visible.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import { Tensor, engine } from '../../engine/index.ts';
import { assertClose, randomArray, tensor, throwsWith } from '../helpers.ts';

test('mismatched shapes: add, matmul inner dimension, matmul batch, concat', () => {
  const a = tensor(randomArray([2, 3], 1), [2, 3]);
  const b = tensor(randomArray([4], 2), [4]);
  throwsWith(() => E.add(a, b), /^add:/, /\[2, 3\]/, /\[4\]/, /cannot be broadcast/);
  throwsWith(() => E.mul(b, a), /^mul:/, /\[4\] and \[2, 3\]/);
  const c = tensor(randomArray([4, 5], 3), [4, 5]);
  throwsWith(() => E.matmul(a, c), /^matmul: inner dimensions differ/, /\[2, 3\]/, /\[4, 5\]/, /3 vs 4/);
  throwsWith(() => E.matmul(a, a, { transB: false }), /inner dimensions differ/, /3 vs 2/);
  const batched2 = tensor(randomArray([2, 3, 4], 4), [2, 3, 4]);
  const batched3 = tensor(randomArray([3, 4, 5], 5), [3, 4, 5]);
  throwsWith(() => E.matmul(batched2, batched3), /batch dimensions \[2\] and \[3\] differ/);
  throwsWith(() => E.matmul(b, c), /matmul: operands need at least 2 dims/, /f32\[4\]/);
  throwsWith(() => E.concat([a, c], 0), /^concat:/, /\[4, 5\]/, /\[2, 3\]/, /outside axis 0/);
  throwsWith(() => E.broadcastTo(a, [3, 3]), /\[2, 3\]/, /\[3, 3\]/);
  for (const t of [a, b, c, batched2, batched3]) t.dispose();
});

test('wrong dtypes: f32 ops on i32 tensors', () => {
  const i = Tensor.fromArray([1, 2, 3], [3], { dtype: 'i32' });
  const f = tensor([1, 2, 3], [3]);
  throwsWith(() => E.add(i, f), /^add: expected f32 tensors/, /i32\[3\]/);
  throwsWith(() => E.add(f, i), /^add: expected f32 tensors/, /i32\[3\]/);
  throwsWith(() => E.exp(i), /^exp: expected an f32 tensor/, /i32\[3\]/);
  throwsWith(() => E.sum(i), /^sum: expected an f32 tensor/, /i32\[3\]/);
  const m = Tensor.fromArray([1, 2, 3, 4], [2, 2], { dtype: 'i32' });
  const mf = tensor([1, 2, 3, 4], [2, 2]);
  throwsWith(() => E.matmul(m, mf), /^matmul: expected f32 tensors/, /i32\[2, 2\]/);
  for (const t of [i, f, m, mf]) t.dispose();
});

test('a disposed tensor used in an op', () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const w = tensor([1, 2, 3, 4, 5, 6], [3, 2]);
  a.dispose();
  assert.ok(a.disposed);
  const used = /tensor #\d+ f32\[2, 3\] was used after dispose\(\)/;
  throwsWith(() => E.add(a, b), used);
  throwsWith(() => E.add(b, a), used);
  throwsWith(() => E.relu(a), used);
  throwsWith(() => E.sum(a), used);
  throwsWith(() => E.matmul(a, w), used);
  throwsWith(() => E.reshape(a, [6]), used);
  throwsWith(() => E.permute(a, [1, 0]), used);
  throwsWith(() => E.slice(a, [0]), used);
  throwsWith(() => E.concat([b, a]), used);
  throwsWith(() => a.detach(), used);
  a.dispose(); // a second dispose is harmless
  for (const t of [b, w]) t.dispose();
});

test('a disposed tensor cannot be read back', async () => {
  const a = tensor([1, 2, 3], [3]);
  a.dispose();
  let message = '';
  try {
    await a.toArray();
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /f32\[3\] was used after dispose\(\)/);
});

test('reshape to an incompatible size', () => {
  const a = tensor(randomArray([2, 3], 6), [2, 3]);
  throwsWith(() => E.reshape(a, [4, 2]), /cannot reshape/, /\[2, 3\]/, /6 elements/, /\[4, 2\]/);
  throwsWith(() => E.reshape(a, [5, -1]), /cannot reshape/, /\[5, -1\]/);
  throwsWith(() => a.view([7]), /cannot reshape/, /\[7\]/);
  a.dispose();
});

test('fromArray with a wrong count or a bad shape', () => {
  throwsWith(() => Tensor.fromArray([1, 2, 3, 4, 5], [2, 3]), /5 values do not fill shape \[2, 3\] \(6 elements\)/);
  throwsWith(() => Tensor.fromArray([1, 2, 3, 4, 5, 6, 7], [2, 3]), /7 values/, /\[2, 3\]/);
  throwsWith(() => Tensor.fromArray([1, 2], [2, -1]), /invalid shape \[2, -1\]/);
  throwsWith(() => Tensor.fromArray([1, 2], [1.5, 2]), /invalid shape/);
  throwsWith(() => Tensor.empty([2, -3]), /invalid shape \[2, -3\]/);
});

test('bad axes: reductions, permute, transpose, slice, concat', () => {
  const a = tensor(randomArray([2, 3, 4], 7), [2, 3, 4]);
  throwsWith(() => E.sum(a, 3), /^sum: axis 3 is out of range for a tensor of rank 3/);
  throwsWith(() => E.mean(a, [-4]), /^mean: axis -4 is out of range/);
  throwsWith(() => E.max(a, [0, 0]), /^max: repeated axis in \[0, 0\]/);
  throwsWith(() => E.min(a, 1.5), /^min: axis 1.5 is out of range/);
  throwsWith(() => E.permute(a, [0, 1]), /^permute: \[0, 1\] is not a permutation of the 3 axes/);
  throwsWith(() => E.permute(a, [0, 1, 5]), /^permute: axis 5 is out of range/);
  throwsWith(() => E.permute(a, [-4, 0, 1]), /^permute: axis -4 is out of range/);
  throwsWith(() => E.transpose(a, 0, 3), /^transpose: axes 0, 3 out of range/);
  throwsWith(() => E.slice(a, [0, 0, 0], [2, 3, 5]), /^slice: range 0:5 of axis 2 is out of bounds/);
  throwsWith(() => E.concat([a, a], 3), /^concat: axis 3 out of range/);
  throwsWith(() => E.concat([a, a], -4), /^concat: axis -4 out of range/);
  a.dispose();
});

test('item() needs one element; backward needs a gradient for non-scalars', async () => {
  const a = tensor([1, 2], [2], true);
  let message = '';
  try {
    await a.item();
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /item\(\) needs a one-element tensor, got .*f32\[2\]/);
  const y = E.exp(a);
  throwsWith(() => y.backward(), /is not a scalar/);
  for (const t of [a, y]) t.dispose();
});

// A kernel that writes `value` into the first `n` elements of its output and leaves the rest.
const partialWrite = E.declareKernels({
  name: 'partialWrite',
  source: `
#interface
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  if (gid.x < p.n) { Out[gid.x] = p.value; }
}`,
  params: { n: 'u32', value: 'f32' },
  entryPoints: { main: { outputs: { Out: 'f32' } } },
});

function writeFirst(t: Tensor, n: number, value: number): void {
  E.launch(partialWrite.main, { inputs: {}, outputs: { Out: t }, params: { n, value }, workgroups: [1, 1, 1] });
}

test('poisoning: fresh storage is NaN at its first use, so an unwritten element fails assertClose', async () => {
  const e = engine();
  assert.ok(e.poisonOutputs, 'the test runner turns poisoning on');
  // Recycle a buffer holding real numbers first: poisoning must overwrite old contents.
  const old = tensor([1, 2, 3, 4, 5], [5]);
  old.dispose();
  const t = Tensor.empty([5]);
  const values = await t.toArray();
  assert.ok([...values].every(Number.isNaN), `fresh tensor reads ${[...values]}`);
  // (uvu's assert.throws re-raises assertion errors, so catch by hand.)
  throwsWith(() => assertClose(values, [0, 0, 0, 0, 0]), /value\[0\] is NaN, expected 0/, /an element the kernel never wrote/);
  // An i32 tensor gets the same bit pattern.
  const ti = Tensor.empty([3], 'i32');
  assert.equal([...(await ti.toArray())], [0x7fc00000, 0x7fc00000, 0x7fc00000]);
  // Every op writes its whole output over the poison.
  const x = tensor(randomArray([5], 8), [5]);
  const y = E.addScalar(x, 1);
  assert.ok([...(await y.toArray())].every(Number.isFinite));

  // A kernel that skips elements of a fresh output leaves NaN there; a second kernel on the
  // same (now written) storage updates it in place, without a new poison fill.
  const old8 = tensor([1, 2, 3, 4, 5, 6, 7, 8], [8]);
  old8.dispose();
  const u = Tensor.empty([8]);
  let before = e.dispatchCount;
  writeFirst(u, 3, 1);
  assert.is(e.dispatchCount, before + 2, 'the poison fill, then the kernel');
  assertClose(await u.toArray(), [1, 1, 1, NaN, NaN, NaN, NaN, NaN]);
  before = e.dispatchCount;
  writeFirst(u, 2, 2);
  assert.is(e.dispatchCount, before + 1, 'written storage is not poisoned again');
  assertClose(await u.toArray(), [2, 2, 1, NaN, NaN, NaN, NaN, NaN]);

  // Storage written from the host counts as written (uploads are not poisoned at first use).
  const w = Tensor.empty([4]);
  e.write(w.buffer, new Float32Array([5, 6, 7, 8]));
  const w1 = E.addScalar(w, 1);
  assertClose(await w1.toArray(), [6, 7, 8, 9]);

  // Tensor.empty itself dispatches nothing; with poisoning off, neither does the first use.
  before = e.dispatchCount;
  const v = Tensor.empty([5]);
  assert.is(e.dispatchCount, before, 'Tensor.empty dispatches nothing');
  e.poisonOutputs = false;
  try {
    const z = Tensor.empty([5]);
    before = e.dispatchCount;
    writeFirst(z, 5, 3);
    assert.is(e.dispatchCount, before + 1, 'no fill dispatched without poisoning');
    assertClose(await z.toArray(), [3, 3, 3, 3, 3]);
    z.dispose();
  } finally {
    e.poisonOutputs = true;
  }
  for (const z of [t, ti, x, y, u, w, w1, v]) z.dispose();
});

test.run();
