// SGD against a float64 reference of PyTorch's update order, parameters without gradients left
// alone, no recompiles when the learning rate changes, and the schedules.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SGD, Tensor, cosineLR, cosineLRPerStep, engine, linearWarmup, setReferenceKernels, stepLR } from '../../engine/index.ts';
import type { SGDOptions } from '../../engine/index.ts';
import { assertClose, randomArray, tensor, noLeaks } from '../helpers.ts';

/** No GPU storage left behind by `fn`. Only growth counts: the FinalizationRegistry may free
 * tensors that earlier test files leaked while `fn` awaits, which lowers the count. */
/** torch.optim.SGD.step for one parameter, float64. */
function refSGD(p: Float64Array, grads: Float64Array[], lrs: number[], o: Required<Omit<SGDOptions, 'lr'>>): Float64Array {
  const x = Float64Array.from(p);
  let buf: Float64Array | null = null;
  grads.forEach((g, t) => {
    const d = Float64Array.from(g, (v, i) => v + o.weightDecay * x[i]);
    if (o.momentum !== 0) {
      if (!buf) buf = Float64Array.from(d);
      else for (let i = 0; i < d.length; i++) buf[i] = o.momentum * buf[i] + (1 - o.dampening) * d[i];
      for (let i = 0; i < d.length; i++) d[i] = o.nesterov ? d[i] + o.momentum * buf[i] : buf[i];
    }
    for (let i = 0; i < x.length; i++) x[i] -= lrs[t] * d[i];
  });
  return x;
}

const CASES: Required<Omit<SGDOptions, 'lr'>>[] = [
  { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
  { momentum: 0, dampening: 0, weightDecay: 5e-4, nesterov: false },
  { momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false },
  { momentum: 0.9, dampening: 0.1, weightDecay: 1e-2, nesterov: false },
  { momentum: 0.9, dampening: 0, weightDecay: 1e-3, nesterov: true },
];

test('SGD matches PyTorch\'s update order over 5 steps (momentum, dampening, decay, nesterov)', async () => {
  await noLeaks(async () => {
    // 21 elements: a ragged vec4 tail; 1073: many invocations, each over several vec4s.
    for (const [k, [o, shape]] of CASES.flatMap((o) => [[o, [3, 7]], [o, [37, 29]]] as const).entries()) {
      const p0 = randomArray(shape, 60 + k);
      const grads = [0, 1, 2, 3, 4].map((t) => randomArray(shape, 70 + 10 * k + t));
      const lrs = [0.1, 0.1, 0.05, 0.05, 0.01];
      const p = tensor(p0, shape, true);
      const frozen = tensor([1, 2, 3], [3]); // no requiresGrad: skipped
      const noGradYet = tensor([4, 5], [2], true); // requiresGrad, no .grad: skipped
      const opt = new SGD([p, frozen, noGradYet], { lr: 0, ...o });
      for (let t = 0; t < 5; t++) {
        p.grad?.dispose();
        p.grad = tensor(grads[t], shape);
        opt.lr = lrs[t];
        opt.step();
      }
      assertClose(await p.toArray(), refSGD(p0, grads, lrs, o), { rtol: 1e-5, atol: 1e-6 }, `SGD case ${k}`);
      assertClose(await frozen.toArray(), [1, 2, 3], {}, 'frozen parameter');
      assertClose(await noGradYet.toArray(), [4, 5], {}, 'parameter without gradient');
      assert.is(opt.momentumBuffer(noGradYet), null);
      opt.zeroGrad();
      assert.is(p.grad, null);
      opt.dispose();
      for (const t of [p, frozen, noGradYet]) t.dispose();
    }
  });
});

// Several parameters per dispatch (engine/optim.ts: 2 a dispatch with momentum, 4 without, the
// rest one by one): odd sizes, sizes spanning several workgroups (8192 floats each), a
// parameter whose first gradient comes a step later than the others' (its own first-step
// flag inside a shared dispatch), an empty one and a frozen one, on the fast and reference paths.
const MANY_SIZES = [1, 3, 5, 21, 0, 1073, 20001, 4, 7, 8192, 8193, 2];

for (const reference of [false, true]) {
  test(`SGD over ${MANY_SIZES.length} parameters of odd sizes in shared dispatches${reference ? ' (reference path: one each)' : ''}`, async () => {
    setReferenceKernels(reference);
    try {
      await noLeaks(async () => {
        for (const [k, o] of CASES.entries()) {
          const ps0 = MANY_SIZES.map((n, i) => randomArray([n], 300 + 20 * k + i));
          const ps = ps0.map((v, i) => tensor(v, [MANY_SIZES[i]], true));
          const frozen = tensor([1, 2, 3], [3]);
          const late = 4; // gets gradients from step 1 on
          const opt = new SGD([...ps.slice(0, 6), frozen, ...ps.slice(6)], { lr: 0, ...o });
          const lrs = [0.1, 0.05, 0.02];
          const grads = ps.map((_, i) => lrs.map((__, t) => randomArray([MANY_SIZES[i]], 500 + 40 * k + 3 * i + t)));
          for (let t = 0; t < lrs.length; t++) {
            ps.forEach((p, i) => {
              p.grad?.dispose();
              p.grad = i === late && t === 0 ? null : tensor(grads[i][t], [MANY_SIZES[i]]);
            });
            opt.lr = lrs[t];
            opt.step();
          }
          for (const [i, p] of ps.entries()) {
            const steps = i === late ? [1, 2] : [0, 1, 2];
            const want = refSGD(ps0[i], steps.map((t) => grads[i][t]), steps.map((t) => lrs[t]), o);
            assertClose(await p.toArray(), want, { rtol: 1e-5, atol: 1e-6 }, `SGD case ${k}, parameter ${i} of ${MANY_SIZES[i]}`);
          }
          assertClose(await frozen.toArray(), [1, 2, 3], {}, 'frozen parameter');
          opt.zeroGrad();
          opt.dispose();
          for (const t of [...ps, frozen]) t.dispose();
        }
      });
    } finally {
      setReferenceKernels(false);
    }
  });
}

test('SGD refuses a parameter given twice (a shared dispatch cannot update one storage as two)', () => {
  const p = tensor([1, 2], [2], true);
  assert.throws(() => new SGD([p, p], { lr: 0.1 }), /given twice/);
  p.dispose();
});

test('changing the learning rate compiles nothing', async () => {
  const p = tensor([1, 2, 3, 4, 5], [5], true);
  p.grad = tensor([1, 1, 1, 1, 1], [5]);
  const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
  opt.step();
  const before = engine().kernels.compiled;
  for (let i = 0; i < 5; i++) { opt.lr = cosineLR(0.1, i, 5); opt.step(); }
  await engine().sync();
  assert.is(engine().kernels.compiled, before);
  opt.dispose();
  p.grad.dispose();
  p.dispose();
});

test('schedules: cosine per epoch and per step, step decay, linear warm-up', () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  close(cosineLR(0.05, 0, 400), 0.05);
  close(cosineLR(0.05, 200, 400), 0.025);
  close(cosineLR(0.05, 400, 400), 0);
  close(cosineLR(0.05, 100, 400), 0.05 * 0.5 * (1 + Math.cos(Math.PI / 4)));
  close(cosineLR(1, 5, 10, 0.1), 0.55);
  close(cosineLRPerStep(0.05, 150, 100, 4), cosineLR(0.05, 1.5, 4));
  close(stepLR(30, 59, [60, 80]), 30);
  close(stepLR(30, 60, [60, 80]), 3);
  close(stepLR(30, 99, [60, 80]), 0.3);
  close(linearWarmup(0.1, 0, 10), 0);
  close(linearWarmup(0.1, 5, 10), 0.05);
  close(linearWarmup(0.1, 0, 10, 0.1), 0.01);
  close(linearWarmup(0.1, 10, 10), 0.1);
  close(linearWarmup(cosineLR(0.1, 3, 10), 20, 10), cosineLR(0.1, 3, 10));
  assert.throws(() => new SGD([], { lr: 0.1, nesterov: true }), /Nesterov/);
  const labels = Tensor.fromArray([1], [1], { dtype: 'i32' });
  assert.throws(() => new SGD([labels], { lr: 0.1 }), /f32/);
  labels.dispose();
});

test.run();
