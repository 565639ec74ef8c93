// Golden PyTorch fixtures (tests/fixtures/make_quant_fixtures.py writes quant_fixtures.json):
// fake-quant of a conv weight and an activation (forward and backward, with and without the
// gradient through the weight scale), cosine similarity and the SimSiam loss, cross-entropy,
// and ten SGD steps with momentum and weight decay on a small MLP.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MinMaxObserver, SGD, Tensor, add, cosineLR, cosineSimilarity, crossEntropy, fakeQuantAct, fakeQuantWeight,
  engine, matmul, relu, scope, simsiamLoss,
} from '../../engine/index.ts';
import { assertClose, tensor, noLeaks } from '../helpers.ts';

/** No GPU storage left behind by `fn`. Only growth counts: the FinalizationRegistry may free
 * tensors that earlier test files leaked while `fn` awaits, which lowers the count. */
interface Fixtures {
  weight: { shape: number[]; w: number[]; g: number[]; cases: { bits: number; y: number[]; grad: number[]; grad_scale_grad: number[] }[] };
  act: { shape: number[]; x1: number[]; x2: number[]; x: number[]; g: number[]; min: number; max: number; cases: { bits: number; y: number[]; grad: number[] }[] };
  cosine: { shape: number[]; p: number[]; z: number[]; g: number[]; cos: number[]; grad_p: number[]; grad_z: number[]; simsiam_loss: number; simsiam_grad_p: number[] };
  cross_entropy: { shape: number[]; logits: number[]; labels: number[]; loss: number; grad: number[] };
  sgd: {
    lr: number; momentum: number; weight_decay: number; steps: number; x: number[]; x_shape: number[]; labels: number[];
    shapes: Record<string, number[]>; init: Record<string, number[]>; final: Record<string, number[]>; losses: number[];
  };
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/quant_fixtures.json', import.meta.url), 'utf8')) as Fixtures;
const TOL = { rtol: 1e-5, atol: 1e-6 };

test('golden: fake-quant of a conv weight, bits 2/4/8, forward bit for bit, STE and scale gradients', async () => {
  await noLeaks(async () => {
    const { shape, w: wData, g } = fx.weight;
    for (const c of fx.weight.cases) {
      for (const scaleGrad of [false, true]) {
        const w = tensor(wData, shape, true);
        const y = scope(() => {
          const out = fakeQuantWeight(w, c.bits, { scaleGrad });
          out.backward(tensor(g, shape));
          return out;
        });
        const got = await y.toArray();
        for (let i = 0; i < got.length; i++) assert.is(got[i], c.y[i], `bits ${c.bits} y[${i}]`);
        assertClose(await w.grad!.toArray(), scaleGrad ? c.grad_scale_grad : c.grad, TOL, `bits ${c.bits} grad (scaleGrad ${scaleGrad})`);
        for (const t of [w.grad!, w, y]) t.dispose();
      }
    }
  });
});

test('golden: fake-quant of an activation with a range observed over two views', async () => {
  await noLeaks(async () => {
    const a = fx.act;
    const obs = new MinMaxObserver();
    const x1 = tensor(a.x1, a.shape);
    const x2 = tensor(a.x2, a.shape);
    obs.observe(x1);
    obs.observe(x2);
    assert.equal(await obs.read(), { min: a.min, max: a.max });
    for (const c of a.cases) {
      const x = tensor(a.x, a.shape, true);
      const y = scope(() => {
        const out = fakeQuantAct(x, c.bits, obs);
        out.backward(tensor(a.g, a.shape));
        return out;
      });
      const got = await y.toArray();
      for (let i = 0; i < got.length; i++) assert.is(got[i], c.y[i], `bits ${c.bits} y[${i}]`);
      assertClose(await x.grad!.toArray(), c.grad, TOL, `bits ${c.bits} grad`);
      for (const t of [x.grad!, x, y]) t.dispose();
    }
    for (const t of [x1, x2]) t.dispose();
    obs.dispose();
  });
});

test('golden: cosine similarity, its gradients, and the SimSiam loss', async () => {
  await noLeaks(async () => {
    const c = fx.cosine;
    const p = tensor(c.p, c.shape, true);
    const z = tensor(c.z, c.shape, true);
    const cos = scope(() => {
      const out = cosineSimilarity(p, z, 1);
      out.backward(tensor(c.g, [c.shape[0]]));
      return out;
    });
    assertClose(await cos.toArray(), c.cos, TOL, 'cos');
    assertClose(await p.grad!.toArray(), c.grad_p, TOL, 'grad p');
    assertClose(await z.grad!.toArray(), c.grad_z, TOL, 'grad z');
    for (const t of [p.grad!, z.grad!, cos]) t.dispose();
    p.grad = null;
    z.grad = null;
    const loss = scope(() => {
      const l = simsiamLoss(p, z);
      l.backward();
      return l;
    });
    assertClose([await loss.item()], [c.simsiam_loss], TOL, 'simsiam loss');
    assertClose(await p.grad!.toArray(), c.simsiam_grad_p, TOL, 'simsiam grad p');
    assert.is(z.grad, null);
    for (const t of [p.grad!, p, z, loss]) t.dispose();
  });
});

test('golden: cross-entropy and its gradient', async () => {
  await noLeaks(async () => {
    const c = fx.cross_entropy;
    const x = tensor(c.logits, c.shape, true);
    const labels = Tensor.fromArray(c.labels, [c.labels.length], { dtype: 'i32' });
    const loss = scope(() => {
      const l = crossEntropy(x, labels);
      l.backward();
      return l;
    });
    assertClose([await loss.item()], [c.loss], TOL, 'loss');
    assertClose(await x.grad!.toArray(), c.grad, TOL, 'grad');
    for (const t of [x.grad!, x, labels, loss]) t.dispose();
  });
});

test('golden: ten SGD steps (momentum 0.9, weight decay 5e-4, cosine lr) on a small MLP match to 1e-5', async () => {
  await noLeaks(async () => {
    const s = fx.sgd;
    const names = ['w1', 'b1', 'w2', 'b2'];
    const params = names.map((n) => tensor(s.init[n], s.shapes[n], true));
    const [w1, b1, w2, b2] = params;
    const x = tensor(s.x, s.x_shape);
    const labels = Tensor.fromArray(s.labels, [s.labels.length], { dtype: 'i32' });
    const opt = new SGD(params, { lr: s.lr, momentum: s.momentum, weightDecay: s.weight_decay });
    const losses: Tensor[] = [];
    for (let step = 0; step < s.steps; step++) {
      opt.lr = cosineLR(s.lr, step, s.steps);
      opt.zeroGrad();
      losses.push(scope(() => {
        const h = relu(add(matmul(x, w1, { transB: true }), b1));
        const loss = crossEntropy(add(matmul(h, w2, { transB: true }), b2), labels);
        loss.backward();
        opt.step();
        return loss;
      }));
    }
    const got = await Promise.all(losses.map((l) => l.item()));
    assertClose(got, s.losses, { rtol: 1e-5, atol: 1e-6 }, 'losses');
    for (const [k, n] of names.entries()) assertClose(await params[k].toArray(), s.final[n], { rtol: 1e-5, atol: 1e-6 }, `final ${n}`);
    opt.zeroGrad();
    opt.dispose();
    for (const t of [...params, x, labels, ...losses]) t.dispose();
  });
});

test.run();
