// Cosine similarity / SimSiam loss, cross-entropy and top-1 accuracy: forward against float64
// references, backward against finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, accuracy, cosineSimilarity, crossEntropy, scope, simsiamLoss, engine } from '../../engine/index.ts';
import { assertClose, gradCheck, randomArray, tensor, noLeaks } from '../helpers.ts';

/** No GPU storage left behind by `fn`. Only growth counts: the FinalizationRegistry may free
 * tensors that earlier test files leaked while `fn` awaits, which lowers the count. */
/** Cosine along `dim` of a tensor viewed as [outer, D, inner], float64. */
export function refCosine(a: ArrayLike<number>, b: ArrayLike<number>, outer: number, D: number, inner: number, eps = 1e-8): Float64Array {
  const out = new Float64Array(outer * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let ab = 0, aa = 0, bb = 0;
      for (let k = 0; k < D; k++) {
        const x = a[(o * D + k) * inner + i];
        const y = b[(o * D + k) * inner + i];
        ab += x * y; aa += x * x; bb += y * y;
      }
      out[o * inner + i] = ab / (Math.max(Math.sqrt(aa), eps) * Math.max(Math.sqrt(bb), eps));
    }
  }
  return out;
}

export function refCrossEntropy(x: ArrayLike<number>, labels: ArrayLike<number>, N: number, K: number): Float64Array {
  const out = new Float64Array(N);
  for (let r = 0; r < N; r++) {
    const y = labels[r];
    if (y < 0 || y >= K) continue;
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, x[r * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(x[r * K + k] - m);
    out[r] = Math.log(s) + m - x[r * K + y];
  }
  return out;
}

test('cosineSimilarity along the last dim: forward and both gradients (a workgroup per row; rows of whole vec4s: an invocation per row)', async () => {
  await noLeaks(async () => {
    for (const [rows, D] of [[5, 37], [5, 36], [70, 8]]) {
      await gradCheck({
        name: `cosine dim -1 [${rows}, ${D}]`, shapes: [[rows, D], [rows, D]],
        gpu: (a, b) => cosineSimilarity(a, b),
        cpu: (a, b) => refCosine(a, b, rows, D, 1),
      });
    }
  });
});

test('cosineSimilarity along a middle dim (strided rows), and a zero row', async () => {
  await noLeaks(async () => {
    await gradCheck({
      name: 'cosine dim 1', shapes: [[2, 70, 3], [2, 70, 3]],
      gpu: (a, b) => cosineSimilarity(a, b, 1),
      cpu: (a, b) => refCosine(a, b, 2, 70, 3),
    });
    // A zero vector: cos 0 (eps bounds the norm), finite gradients; rows of 3 and of 4.
    for (const pad of [0, 1]) {
      const row = (v: number[]) => (pad ? [...v, 0] : v);
      const D = 3 + pad;
      const a = tensor([...row([0, 0, 0]), ...row([1, 2, 3])], [2, D], true);
      const b = tensor([...row([1, 2, 3]), ...row([3, 2, 1])], [2, D], true);
      const c = scope(() => {
        const out = cosineSimilarity(a, b);
        out.backward(tensor([1, 1], [2]));
        return out;
      });
      assertClose(await c.toArray(), [0, 10 / 14], {}, `cos with a zero row (D ${D})`);
      const ga = await a.grad!.toArray();
      assertClose(ga.slice(0, 3), [1e8 / Math.sqrt(14), 2e8 / Math.sqrt(14), 3e8 / Math.sqrt(14)], { rtol: 1e-5 }, 'zero-row gradient (b / (eps |b|))');
      assertClose(await b.grad!.toArray().then((g) => g.slice(0, 3)), [0, 0, 0], {}, 'gradient of b against a zero row');
      for (const t of [a.grad!, b.grad!, a, b, c]) t.dispose();
    }
  });
});

test('simsiamLoss: -mean cos(p, stopgrad(z)); z gets no gradient', async () => {
  await noLeaks(async () => {
    await gradCheck({
      name: 'simsiam', shapes: [[6, 40], [6, 40]], check: [0],
      gpu: (p, z) => simsiamLoss(p, z),
      cpu: (p, z) => [-refCosine(p, z, 6, 40, 1).reduce((s, v) => s + v, 0) / 6],
    });
    const p = tensor(randomArray([3, 8], 5), [3, 8], true);
    const z = tensor(randomArray([3, 8], 6), [3, 8], true);
    scope(() => simsiamLoss(p, z).backward());
    assert.ok(p.grad);
    assert.is(z.grad, null, 'stop-gradient: z has no gradient');
    for (const t of [p.grad!, p, z]) t.dispose();
  });
});

test('crossEntropy: per-sample, mean and sum, with gradients', async () => {
  await noLeaks(async () => {
    const N = 7;
    const K = 5;
    const labelData = [0, 4, 2, 2, 1, 3, 0];
    const labels = Tensor.fromArray(labelData, [N], { dtype: 'i32' });
    for (const reduction of ['none', 'mean', 'sum'] as const) {
      await gradCheck({
        name: `crossEntropy ${reduction}`, shapes: [[N, K]],
        inputs: (s, k) => randomArray(s, 50 + k, -3, 3),
        gpu: (x) => crossEntropy(x, labels, { reduction }),
        cpu: (x) => {
          const l = refCrossEntropy(x, labelData, N, K);
          if (reduction === 'none') return l;
          const s = l.reduce((a, v) => a + v, 0);
          return [reduction === 'mean' ? s / N : s];
        },
      });
    }
    labels.dispose();
  });
});

test('crossEntropy is stable for huge logits and ignores out-of-range labels', async () => {
  await noLeaks(async () => {
    const x = tensor([1000, 0, -1000, 50, 51, 49, 3, 3, 3], [3, 3], true);
    const labels = Tensor.fromArray([0, 1, -1], [3], { dtype: 'i32' });
    const l = scope(() => {
      const out = crossEntropy(x, labels, { reduction: 'none' });
      out.backward(tensor([1, 1, 1], [3]));
      return out;
    });
    assertClose(await l.toArray(), refCrossEntropy([1000, 0, -1000, 50, 51, 49, 3, 3, 3], [0, 1, -1], 3, 3), { rtol: 1e-5, atol: 1e-5 }, 'stable loss');
    const g = await x.grad!.toArray();
    assert.ok(g.every(Number.isFinite), 'finite gradient');
    assertClose(g.slice(6), [0, 0, 0], {}, 'ignored row gradient');
    for (const t of [x.grad!, x, labels, l]) t.dispose();
  });
});

test('accuracy: top-1 with the first arg-max on ties', async () => {
  await noLeaks(async () => {
    const x = tensor([0.1, 0.9, 0.0, /**/ 2, 1, 0, /**/ 1, 1, 0, /**/ 0, 0, 5], [4, 3]);
    const labels = Tensor.fromArray([1, 0, 1, 2], [4], { dtype: 'i32' });
    const acc = accuracy(x, labels);
    assert.is(await acc.item(), 0.75); // row 3 ties 1,1: first arg-max is 0, label 1
    assert.throws(() => accuracy(x, x), /i32 labels/);
    for (const t of [x, labels, acc]) t.dispose();
  });
});

test.run();
