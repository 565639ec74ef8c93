// Autograd: a two-layer network against hand-derived float64 backprop, gradient accumulation,
// noGrad, detach, scopes, shared subexpressions and freed graphs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import { Tensor, engine, keep, noGrad, isGradEnabled, scope } from '../../engine/index.ts';
import { assertClose, randomArray, tensor } from '../helpers.ts';

const [B, IN, HID, OUT] = [8, 5, 6, 3];

interface NetData {
  x: Float64Array; w1: Float64Array; b1: Float64Array; w2: Float64Array; b2: Float64Array; t: Float64Array;
}

function netData(seed: number): NetData {
  return {
    x: randomArray([B, IN], seed), w1: randomArray([IN, HID], seed + 1), b1: randomArray([HID], seed + 2),
    w2: randomArray([HID, OUT], seed + 3), b2: randomArray([OUT], seed + 4), t: randomArray([B, OUT], seed + 5),
  };
}

/**
 * Hand-derived backprop in float64 for y = relu(x W1 + b1) W2 + b2, L = mean((y - t)^2):
 *   dL/dy = 2 (y - t) / (B * OUT)
 *   dW2 = aᵀ dy,  db2 = Σ_rows dy,  da = dy W2ᵀ,  dh = da ⊙ [h > 0],  dW1 = xᵀ dh,  db1 = Σ_rows dh
 */
function cpuNet(d: NetData) {
  const h = new Float64Array(B * HID);
  const a = new Float64Array(B * HID);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < HID; j++) {
      let s = d.b1[j];
      for (let k = 0; k < IN; k++) s += d.x[i * IN + k] * d.w1[k * HID + j];
      h[i * HID + j] = s;
      a[i * HID + j] = Math.max(s, 0);
    }
  }
  const y = new Float64Array(B * OUT);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < OUT; j++) {
      let s = d.b2[j];
      for (let k = 0; k < HID; k++) s += a[i * HID + k] * d.w2[k * OUT + j];
      y[i * OUT + j] = s;
    }
  }
  let loss = 0;
  const dy = new Float64Array(B * OUT);
  for (let i = 0; i < B * OUT; i++) {
    const diff = y[i] - d.t[i];
    loss += diff * diff / (B * OUT);
    dy[i] = 2 * diff / (B * OUT);
  }
  const dw2 = new Float64Array(HID * OUT);
  const db2 = new Float64Array(OUT);
  const da = new Float64Array(B * HID);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < OUT; j++) {
      db2[j] += dy[i * OUT + j];
      for (let k = 0; k < HID; k++) {
        dw2[k * OUT + j] += a[i * HID + k] * dy[i * OUT + j];
        da[i * HID + k] += dy[i * OUT + j] * d.w2[k * OUT + j];
      }
    }
  }
  const dw1 = new Float64Array(IN * HID);
  const db1 = new Float64Array(HID);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < HID; j++) {
      const dh = h[i * HID + j] > 0 ? da[i * HID + j] : 0;
      db1[j] += dh;
      for (let k = 0; k < IN; k++) dw1[k * HID + j] += d.x[i * IN + k] * dh;
    }
  }
  return { loss, dw1, db1, dw2, db2 };
}

function gpuParams(d: NetData) {
  return {
    w1: tensor(d.w1, [IN, HID], true), b1: tensor(d.b1, [HID], true),
    w2: tensor(d.w2, [HID, OUT], true), b2: tensor(d.b2, [OUT], true),
    x: tensor(d.x, [B, IN]), t: tensor(d.t, [B, OUT]),
  };
}

type Params = ReturnType<typeof gpuParams>;

function gpuLoss(p: Params): Tensor {
  const hidden = E.relu(E.add(E.matmul(p.x, p.w1), p.b1));
  const y = E.add(E.matmul(hidden, p.w2), p.b2);
  const diff = E.sub(y, p.t);
  return E.mean(E.mul(diff, diff));
}

function disposeAll(p: Params): void {
  for (const t of Object.values(p)) {
    t.grad?.dispose();
    t.dispose();
  }
}

const TOL = { rtol: 1e-4, atol: 1e-6 };

test('two-layer network: loss and gradients match hand-derived float64 backprop', async () => {
  for (const seed of [1, 2]) {
    const d = netData(seed * 10);
    const ref = cpuNet(d);
    const p = gpuParams(d);
    const loss = scope(() => {
      const l = gpuLoss(p);
      l.backward();
      return l;
    });
    assertClose([await loss.item()], [ref.loss], TOL, 'loss');
    assertClose(await p.w1.grad!.toArray(), ref.dw1, TOL, 'dW1');
    assertClose(await p.b1.grad!.toArray(), ref.db1, TOL, 'db1');
    assertClose(await p.w2.grad!.toArray(), ref.dw2, TOL, 'dW2');
    assertClose(await p.b2.grad!.toArray(), ref.db2, TOL, 'db2');
    assert.is(p.x.grad, null, 'x does not require grad: no gradient');
    assert.is(p.t.grad, null);
    loss.dispose();
    disposeAll(p);
  }
});

test('gradients accumulate across two backward() calls (grad doubles)', async () => {
  const d = netData(30);
  const ref = cpuNet(d);
  const p = gpuParams(d);
  for (let k = 0; k < 2; k++) {
    scope(() => gpuLoss(p).backward());
  }
  const twice = (a: Float64Array) => a.map((v) => 2 * v);
  assertClose(await p.w1.grad!.toArray(), twice(ref.dw1), TOL, 'dW1 x2');
  assertClose(await p.b1.grad!.toArray(), twice(ref.db1), TOL, 'db1 x2');
  assertClose(await p.w2.grad!.toArray(), twice(ref.dw2), TOL, 'dW2 x2');
  assertClose(await p.b2.grad!.toArray(), twice(ref.db2), TOL, 'db2 x2');
  disposeAll(p);
});

test('noGrad records nothing: outputs do not require grad and have no tape node', async () => {
  const w = tensor([1, 2, 3], [3], true);
  const x = tensor([4, 5, 6], [3]);
  assert.ok(isGradEnabled());
  const y = noGrad(() => {
    assert.not.ok(isGradEnabled());
    const inner = noGrad(() => E.mul(w, x)); // nested noGrad keeps it off
    assert.not.ok(isGradEnabled(), 'still off after a nested noGrad');
    inner.dispose();
    return E.sum(E.mul(w, x));
  });
  assert.ok(isGradEnabled(), 'back on after noGrad');
  assert.is(y.requiresGrad, false);
  assert.is(y.node, null);
  assert.is(await y.item(), 32);
  assert.throws(() => y.backward(), /does not require grad/);
  // An exception inside noGrad still restores recording.
  assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
  assert.ok(isGradEnabled(), 'restored after an exception');
  const z = E.mul(w, x);
  assert.ok(z.requiresGrad && z.node !== null, 'recording again');
  for (const t of [w, x, y, z]) t.dispose();
});

test('detach stops the gradient: d/dw sum(detach(w) * w) = w, not 2w', async () => {
  const data = randomArray([17], 41);
  const w = tensor(data, [17], true);
  const wd = w.detach();
  assert.is(wd.requiresGrad, false);
  assert.is(wd.node, null);
  assert.ok(wd.buffer === w.buffer, 'detach shares storage');
  scope(() => E.sum(E.mul(wd, w)).backward());
  assertClose(await w.grad!.toArray(), data, {}, 'grad');
  // Nothing computed from the detached tensor alone records a graph.
  const y2 = E.sum(E.exp(wd));
  assert.is(y2.requiresGrad, false);
  for (const t of [w.grad!, w, wd, y2]) t.dispose();
});

test('scope disposes intermediates, keeps returned tensors and leaf .grad', async () => {
  const pool = engine().pool;
  const data = randomArray([5], 51);
  const w = tensor(data, [5], true);
  const before = pool.liveBytes;
  let inner: Tensor[] = [];
  const out = scope(() => {
    const a = E.mulScalar(w, 3);
    const b = E.exp(a);
    const l = E.sum(b);
    l.backward();
    inner = [a, b];
    return { loss: l, list: [E.addScalar(w, 1)] };
  });
  assert.ok(inner.every((t) => t.disposed), 'intermediates disposed');
  assert.not.ok(out.loss.disposed, 'returned tensor kept');
  assert.not.ok(out.list[0].disposed, 'tensor in a returned array kept');
  assert.ok(w.grad && !w.grad.disposed, 'leaf grad kept');
  // Exactly three new allocations are alive: the loss, the returned tensor and the gradient.
  // (Byte counts are compared with no await in between, so no finalizer can interfere.)
  assert.is(pool.liveBytes, before + 3 * 256);
  assertClose(await w.grad!.toArray(), data.map((v) => 3 * Math.exp(3 * v)), { rtol: 1e-5, atol: 1e-6 }, 'grad');
  assertClose([await out.loss.item()], [data.reduce((s, v) => s + Math.exp(3 * v), 0)], { rtol: 1e-5 }, 'loss');
  const held = pool.liveBytes;
  out.loss.dispose();
  out.list[0].dispose();
  w.grad!.dispose();
  w.grad = null;
  assert.is(pool.liveBytes, held - 3 * 256, 'nothing else outlived the scope');
  const base = pool.liveBytes;

  // Nested scopes: a returned tensor moves to the enclosing scope; keep() exempts it from all.
  let moved: Tensor | null = null;
  let kept: Tensor | null = null;
  scope(() => {
    moved = scope(() => E.neg(w));
    kept = keep(E.neg(w));
    assert.not.ok(moved.disposed);
  });
  assert.ok(moved!.disposed, 'disposed by the outer scope');
  assert.not.ok(kept!.disposed, 'keep() survives every scope');
  kept!.dispose();
  // A throwing scope still disposes what it created.
  let made: Tensor | null = null;
  assert.throws(() => scope(() => { made = E.neg(w); throw new Error('inside'); }), /inside/);
  assert.ok(made!.disposed);
  assert.is(pool.liveBytes, base);
  w.dispose();
});

test('a shared subexpression used twice accumulates: d/dx sum(x*x + x) = 2x + 1', async () => {
  const data = randomArray([65], 61);
  const x = tensor(data, [65], true);
  scope(() => E.sum(E.add(E.mul(x, x), x)).backward());
  assertClose(await x.grad!.toArray(), data.map((v) => 2 * v + 1), {}, 'grad');
  x.grad!.dispose();
  x.grad = null;
  // A diamond: u = exp(x) feeds two branches that meet again; d/dx sum(u*u + u) = (2u + 1) u.
  scope(() => {
    const u = E.exp(x);
    E.sum(E.add(E.mul(u, u), u)).backward();
  });
  assertClose(await x.grad!.toArray(), data.map((v) => (2 * Math.exp(v) + 1) * Math.exp(v)), { rtol: 1e-5, atol: 1e-6 }, 'diamond grad');
  x.grad!.dispose();
  x.dispose();
});

test('a tensor used seven times: its contributions are summed (in addN groups of four) in order', async () => {
  const data = randomArray([37], 62);
  const scales = [0.3, -1.7, 2.1, 0.55, -0.9, 1.25, 3.5];
  const x = tensor(data, [37], true);
  scope(() => {
    let y = E.mulScalar(x, scales[0]);
    for (const s of scales.slice(1)) y = E.add(y, E.mulScalar(x, s));
    E.sum(y).backward();
  });
  const total = scales.reduce((a, b) => a + b, 0);
  assertClose(await x.grad!.toArray(), data.map(() => total), { rtol: 1e-5, atol: 1e-6 }, 'grad');
  x.grad!.dispose();
  x.dispose();
});

test('a second backward through a freed graph throws a clear error', async () => {
  const w = tensor([1, 2, 3], [3], true);
  const y = E.mul(w, w);
  const loss = E.sum(y);
  loss.backward();
  const before = engine().pool.liveBytes;
  assert.throws(() => loss.backward(), /already freed by an earlier backward\(\)/);
  assert.is(engine().pool.liveBytes, before, 'a failed backward leaves nothing behind');
  // A second loss over the same freed intermediate fails the same way.
  const loss2 = E.sum(E.exp(y));
  assert.throws(() => loss2.backward(), /graph through 'mul' was already freed/);
  assert.equal([...(await w.grad!.toArray())], [2, 4, 6], 'the first backward counted once');
  for (const t of [w.grad!, w, y, loss, loss2]) t.dispose();
});

test('backward through a graph whose intermediates were disposed throws (no silent zero gradient)', () => {
  const w = tensor([1, 2, 3], [3], true);
  const loss = scope(() => E.sum(E.addScalar(E.mulScalar(w, 2), 1)));
  assert.throws(() => loss.backward(), /backward\(\): tensor #\d+ f32\[3\] was disposed .*before backward\(\)/);
  assert.is(w.grad, null);
  loss.dispose();
  w.dispose();
});

test('backward argument checks: non-scalar root, mismatched gradient, no grad', () => {
  const w = tensor([1, 2, 3, 4], [2, 2], true);
  const y = E.mulScalar(w, 2);
  assert.throws(() => y.backward(), /not a scalar; pass the output gradient/);
  const g = tensor([1, 1, 1], [3]);
  assert.throws(() => y.backward(g), /gradient .*f32\[3\] does not match .*f32\[2, 2\]/);
  const c = tensor([1], [1]);
  assert.throws(() => c.backward(), /does not require grad/);
  for (const t of [w, y, g, c]) t.dispose();
});

test('only leaves get .grad; a non-scalar backward with an explicit gradient', async () => {
  const data = randomArray([2, 3], 71);
  const w = tensor(data, [2, 3], true);
  const h = E.mulScalar(w, 2);
  const y = E.mul(h, h); // 4 w^2
  const g = randomArray([2, 3], 72);
  const gT = tensor(g, [2, 3]);
  y.backward(gT);
  assert.is(h.grad, null, 'intermediate has no .grad');
  assertClose(await w.grad!.toArray(), data.map((v, i) => 8 * v * g[i]), {}, 'grad');
  assert.not.ok(gT.disposed, 'backward does not consume the caller\'s gradient');
  for (const t of [w.grad!, w, h, y, gT]) t.dispose();
});

test.run();
