// Fake quantization and observers (docs/method.md#quantizer-arithmetic): the worked examples bit for bit, ties to
// even, bits 2..8 against an f32-faithful float64 reference, the straight-through mask,
// pass-through, observers accumulating until reset, and no recompiles when bits change.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AbsMaxObserver, MinMaxObserver, Tensor, engine, fakeQuantAct, fakeQuantWeight, scope } from '../../engine/index.ts';
import { assertClose, randomArray, tensor } from '../helpers.ts';

/** No GPU storage left behind by `fn`. Only growth counts: the FinalizationRegistry may free
 * tensors that earlier test files leaked while `fn` awaits, which lowers the count. */
async function noLeaks(fn: () => Promise<void>): Promise<void> {
  const pool = engine().pool;
  const before = pool.liveBytes;
  await fn();
  assert.ok(pool.liveBytes <= before, `live GPU bytes grew: ${before} -> ${pool.liveBytes}`);
}

const f = Math.fround;

/** Round half to even (torch.round, WGSL round); Math.round is not. */
export function roundEven(x: number): number {
  const r = Math.floor(x);
  const d = x - r;
  if (d > 0.5) return r + 1;
  if (d < 0.5) return r;
  return r % 2 === 0 ? r : r + 1;
}

interface RefOut { y: Float64Array; inside: Uint8Array; }

/** Per-channel symmetric reference, each operation rounded to f32 as PyTorch computes it. */
export function refWeight(w: ArrayLike<number>, C: number, bits: number): RefOut & { range: Float64Array } {
  const L = w.length / C;
  const range = new Float64Array(C);
  for (let c = 0; c < C; c++) for (let i = 0; i < L; i++) range[c] = Math.max(range[c], Math.abs(w[c * L + i]));
  const D = ((2 ** bits) - 1) / 2;
  const scales = Array.from(range, (m) => f(m / D));
  const pass = bits === 0 || scales.some((s) => s === 0);
  const y = new Float64Array(w.length);
  const inside = new Uint8Array(w.length).fill(1);
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  for (let i = 0; i < w.length; i++) {
    if (pass) { y[i] = w[i]; continue; }
    const s = scales[Math.floor(i / L)];
    const r = roundEven(f(w[i] / s));
    const q = Math.min(Math.max(r, lo), hi);
    y[i] = f(q * s);
    inside[i] = r >= lo && r <= hi ? 1 : 0;
  }
  return { y, inside, range };
}

/** Per-tensor asymmetric reference with range [mn, mx]. */
export function refAct(x: ArrayLike<number>, mn: number, mx: number, bits: number): RefOut {
  const levels = 2 ** bits - 1;
  const s = f(f(mx - mn) / levels);
  const zp = -roundEven(f(mn / s));
  const pass = bits === 0 || !(s > 0);
  const y = new Float64Array(x.length);
  const inside = new Uint8Array(x.length).fill(1);
  for (let i = 0; i < x.length; i++) {
    if (pass) { y[i] = x[i]; continue; }
    const r = roundEven(f(x[i] / s)) + zp;
    const q = Math.min(Math.max(r, 0), levels);
    y[i] = f(f(q - zp) * s);
    inside[i] = r >= 0 && r <= levels ? 1 : 0;
  }
  return { y, inside };
}

function assertExact(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected[i]) assert.unreachable(`${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
  }
}

test('worked weight example: b=4, [-7.5,-2.5,3.5,7.5] gives s=1, q=[-8,-2,4,7]', async () => {
  await noLeaks(async () => {
    const w = tensor([-7.5, -2.5, 3.5, 7.5, -1, 0.25, 0.5, 1], [2, 4]);
    const y = fakeQuantWeight(w, 4);
    const out = await y.toArray();
    assertExact(out.slice(0, 4), [-8, -2, 4, 7], 'worked example channel');
    // Channel 1: s = f32(1/7.5); in f32, -1 / s = -7.4999995 (not -7.5), so it rounds to -7.
    const s1 = f(1 / 7.5);
    assert.is(f(-1 / s1), f(-7.4999995));
    assertExact(out.slice(4), [f(-7 * s1), f(2 * s1), f(4 * s1), f(7 * s1)], 'second channel');
    assertExact(out, refWeight([-7.5, -2.5, 3.5, 7.5, -1, 0.25, 0.5, 1], 2, 4).y, 'reference');
    w.dispose();
    y.dispose();
  });
});

test('worked activation example: b=2, range [0,3], x=[0,.5,1.5,2.5,3,3.7] gives q=[0,0,2,2,3,3]', async () => {
  await noLeaks(async () => {
    const obs = new MinMaxObserver();
    const r = tensor([0, 3], [2]);
    obs.observe(r);
    assert.equal(await obs.read(), { min: 0, max: 3 });
    const x = tensor([0, 0.5, 1.5, 2.5, 3, 3.7], [6], true);
    const y = scope(() => {
      const out = fakeQuantAct(x, 2, obs);
      out.backward(tensor([1, 2, 3, 4, 5, 6], [6]));
      return out;
    });
    assertExact(await y.toArray(), [0, 0, 2, 2, 3, 3], 'fake-quant act');
    y.dispose();
    // Straight-through: the gradient passes inside [0, 3] (3.7 rounds to 4, outside).
    assertExact(await x.grad!.toArray(), [1, 2, 3, 4, 5, 0], 'STE gradient');
    x.grad!.dispose();
    for (const t of [x, r]) t.dispose();
    obs.dispose();
  });
});

test('ties round half to even (weights and activations)', async () => {
  // s = 1 (b=4, max 7.5): halves go to the even neighbour.
  const wv = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -3.5, 7.5, 4.5, -7.5, 5.5, 6.5];
  const w = tensor(wv, [1, 12]);
  const y = fakeQuantWeight(w, 4);
  assertExact(await y.toArray(), [0, 2, 2, -0, -2, -2, -4, 7, 4, -8, 6, 6], 'weight ties');
  // Activations: b=3, range [-3.5, 3.5]: s = 1, zp = -round(-3.5) = 4.
  const obs = new MinMaxObserver();
  const range = tensor([-3.5, 3.5], [2]);
  obs.observe(range);
  const x = tensor([-3.5, -2.5, -0.5, 0.5, 1.5, 2.5, 3.5], [7]);
  const ya = fakeQuantAct(x, 3, obs);
  assertExact(await ya.toArray(), refAct([-3.5, -2.5, -0.5, 0.5, 1.5, 2.5, 3.5], -3.5, 3.5, 3).y, 'activation ties');
  assertExact(await ya.toArray(), [-4, -2, -0, 0, 2, 2, 3], 'activation ties (explicit)');
  for (const t of [w, y, range, x, ya]) t.dispose();
  obs.dispose();
});

test('bits 2..8: weights [6,3,3,3] and activations [2,3,5,7] match the reference bit for bit', async () => {
  const wShape = [6, 3, 3, 3];
  const wData = randomArray(wShape, 11, -0.4, 0.4);
  const xData = randomArray([2, 3, 5, 7], 12, -1.3, 2.9);
  const w = tensor(wData, wShape);
  const x = tensor(xData, [2, 3, 5, 7]);
  const obs = new MinMaxObserver();
  obs.observe(x);
  let mn = Infinity;
  let mx = -Infinity;
  for (const v of xData) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
  assert.equal(await obs.read(), { min: mn, max: mx });
  for (let bits = 2; bits <= 8; bits++) {
    const y = fakeQuantWeight(w, bits);
    assertExact(await y.toArray(), refWeight(wData, 6, bits).y, `weight bits ${bits}`);
    const ya = fakeQuantAct(x, bits, obs);
    assertExact(await ya.toArray(), refAct(xData, mn, mx, bits).y, `activation bits ${bits}`);
    y.dispose();
    ya.dispose();
  }
  for (const t of [w, x]) t.dispose();
  obs.dispose();
});

test('straight-through masks: weight and activation gradients', async () => {
  await noLeaks(async () => {
    const wData = randomArray([5, 2, 3, 3], 21);
    const gData = randomArray([5, 2, 3, 3], 22);
    const xData = randomArray([3, 37], 23, -2, 2);
    const gxData = randomArray([3, 37], 24);
    for (const bits of [2, 3, 5, 8]) {
      const w = tensor(wData, [5, 2, 3, 3], true);
      const x = tensor(xData, [3, 37], true);
      const obs = new MinMaxObserver();
      // A range narrower than the data, so some activations clamp on both sides.
      const r = tensor([-1.1, 0.9], [2]);
      obs.observe(r);
      scope(() => {
        fakeQuantWeight(w, bits).backward(tensor(gData, [5, 2, 3, 3]));
        fakeQuantAct(x, bits, obs).backward(tensor(gxData, [3, 37]));
      });
      const rw = refWeight(wData, 5, bits);
      assert.ok(rw.inside.includes(0), 'some weight clamps (the positive max at the lopsided grid edge)');
      assertExact(await w.grad!.toArray(), Array.from(gData, (g, i) => f(rw.inside[i] ? g : 0)), `weight STE bits ${bits}`);
      const ra = refAct(xData, f(-1.1), f(0.9), bits);
      assertExact(await x.grad!.toArray(), Array.from(gxData, (g, i) => f(ra.inside[i] ? g : 0)), `activation STE bits ${bits}`);
      for (const t of [w.grad!, x.grad!, w, x, r]) t.dispose();
      obs.dispose();
    }
  });
});

test('pass-through: bit 0, a zero channel anywhere, a constant activation, an unobserved range', async () => {
  await noLeaks(async () => {
    const wData = [0.3, -0.7, 0.1, 0, 0, 0, 0.9, 0.2, -0.4];
    const g = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    for (const [bits, wd] of [[0, wData.map((v) => v + 1)], [4, wData]] as [number, number[]][]) {
      const w = tensor(wd, [3, 3], true);
      const y = scope(() => {
        const out = fakeQuantWeight(w, bits);
        out.backward(tensor(g, [3, 3]));
        return out;
      });
      assertExact(await y.toArray(), wd.map(f), `pass-through weight (bits ${bits})`);
      y.dispose();
      assertExact(await w.grad!.toArray(), g, `pass-through weight gradient (bits ${bits})`);
      // With an observer's range as well.
      const obs = new AbsMaxObserver(3);
      obs.observe(w);
      const y2 = fakeQuantWeight(w, bits, { range: obs.range });
      assertExact(await y2.toArray(), wd.map(f), `pass-through weight with observer range (bits ${bits})`);
      for (const t of [w.grad!, w, y2]) t.dispose();
      obs.dispose();
    }
    const x = tensor([0.5, 0.5, 0.5, 0.5, 0.5], [5], true);
    const obs = new MinMaxObserver();
    const y0 = fakeQuantAct(x, 4, obs); // never observed
    assertExact(await y0.toArray(), [0.5, 0.5, 0.5, 0.5, 0.5], 'unobserved range');
    obs.observe(x);
    const y = scope(() => {
      const out = fakeQuantAct(x, 4, obs); // min == max: zero scale
      out.backward(tensor([1, 2, 3, 4, 5], [5]));
      return out;
    });
    assertExact(await y.toArray(), [0.5, 0.5, 0.5, 0.5, 0.5], 'constant activation');
    y.dispose();
    assertExact(await x.grad!.toArray(), [1, 2, 3, 4, 5], 'pass-through activation gradient');
    const y8 = fakeQuantAct(x, 0, obs);
    assertExact(await y8.toArray(), [0.5, 0.5, 0.5, 0.5, 0.5], 'bit 0 activation');
    for (const t of [x.grad!, x, y0, y8]) t.dispose();
    obs.dispose();
  });
});

test('observers accumulate over calls until reset; observer range equals the fused path', async () => {
  await noLeaks(async () => {
    const a = tensor([1, -2, 3, 0.5, 7, -1], [2, 3]);
    const b = tensor([-4, 1, 1, 2, 0.1, -9], [2, 3]);
    const mm = new MinMaxObserver();
    const am = new AbsMaxObserver(2);
    mm.observe(a);
    am.observe(a);
    assert.equal(await mm.read(), { min: -2, max: 7 });
    assertExact(await am.range.toArray(), [3, 7], 'absmax after one call');
    mm.observe(b);
    am.observe(b);
    assert.equal(await mm.read(), { min: -9, max: 7 });
    assertExact(await am.range.toArray(), [4, 9], 'absmax accumulated');
    mm.reset();
    am.reset();
    assert.equal(await mm.read(), { min: Infinity, max: -Infinity });
    mm.observe(b);
    am.observe(b);
    assert.equal(await mm.read(), { min: -9, max: 2 });
    assertExact(await am.range.toArray(), [4, 9], 'absmax after reset');
    // A large activation (several workgroups, a ragged vec4 tail).
    const big = randomArray([70001], 31, -3, 5);
    const xb = tensor(big, [70001]);
    mm.reset();
    mm.observe(xb);
    assert.equal(await mm.read(), { min: Math.min(...big), max: Math.max(...big) });
    // Observer range vs fused.
    const wData = randomArray([4, 50], 32);
    const w = tensor(wData, [4, 50]);
    const obs = new AbsMaxObserver(4);
    obs.observe(w);
    assertExact(await obs.range.toArray(), refWeight(wData, 4, 4).range, 'observer range');
    const y1 = fakeQuantWeight(w, 5);
    const y2 = fakeQuantWeight(w, 5, { range: obs.range });
    assertExact(await y2.toArray(), await y1.toArray(), 'observer path vs fused path');
    for (const t of [a, b, xb, w, y1, y2]) t.dispose();
    for (const o of [mm, am, obs]) o.dispose();
  });
});

test('scaleGrad: gradient through the weight scale reaches each channel\'s max-|w| element', async () => {
  const wData = Float64Array.from([0.2, -0.9, 0.35, 0.1, 0.6, -0.05, 0.3, 0.45], f);
  const gData = Float64Array.from([1, -0.5, 0.25, 2, -1, 0.5, 1.5, -2]);
  const bits = 3;
  const w = tensor(wData, [2, 4], true);
  scope(() => fakeQuantWeight(w, bits, { scaleGrad: true }).backward(tensor(gData, [2, 4])));
  // Reference: gw = g * inside, plus sign(w) * sum(g * (q - inside * w / s)) / D at argmax |w|.
  const D = (2 ** bits - 1) / 2;
  const expected = new Float64Array(8);
  for (let c = 0; c < 2; c++) {
    const ch = wData.slice(c * 4, c * 4 + 4);
    const m = Math.max(...ch.map(Math.abs));
    const s = f(m / D);
    let ds = 0;
    let at = -1;
    ch.forEach((x, i) => {
      const r = roundEven(f(x / s));
      const q = Math.min(Math.max(r, -4), 3);
      const inside = r >= -4 && r <= 3;
      expected[c * 4 + i] = inside ? gData[c * 4 + i] : 0;
      ds += gData[c * 4 + i] * (q - (inside ? x / s : 0));
      if (at < 0 && Math.abs(x) === m) at = i;
    });
    expected[c * 4 + at] += Math.sign(ch[at]) * ds / D;
  }
  assertClose(await w.grad!.toArray(), expected, { rtol: 1e-5, atol: 1e-6 }, 'scaleGrad gradient');
  w.grad!.dispose();
  w.dispose();
});

/** The gradient of the reference code's weight quantizer: the straight-through mask, plus the
 * gradient through each channel's scale at its first max-|w| element (float64 sums). */
function refScaleGrad(w: ArrayLike<number>, g: ArrayLike<number>, C: number, bits: number): Float64Array {
  const L = w.length / C;
  const { inside, range } = refWeight(w, C, bits);
  const D = (2 ** bits - 1) / 2;
  const lo = -(2 ** (bits - 1));
  const hi = 2 ** (bits - 1) - 1;
  const out = Float64Array.from(g, (v, i) => (inside[i] ? v : 0));
  for (let c = 0; c < C; c++) {
    const s = f(range[c] / D);
    let ds = 0;
    let at = -1;
    for (let i = c * L; i < (c + 1) * L; i++) {
      const r = roundEven(f(w[i] / s));
      const q = Math.min(Math.max(r, lo), hi);
      ds += g[i] * (q - (inside[i] ? w[i] / s : 0));
      if (at < 0 && Math.abs(w[i]) === range[c]) at = i;
    }
    out[at] += Math.sign(w[at]) * ds / D;
  }
  return out;
}

test('weights of many shapes: channels of 1..130 elements, across segments and workgroups; ranges, forward, STE and scale gradients', async () => {
  await noLeaks(async () => {
    // L = 1, 3, 9 (3x3, one input channel), 45, 101: not multiples of 4, so channels begin
    // inside a vec4; 64 and 130: several 32-element segments; 70 channels: several workgroups.
    const shapes = [[5, 1], [6, 3], [70, 9], [7, 5, 3, 3], [3, 101], [9, 64], [4, 130]];
    let seed = 70;
    for (const shape of shapes) {
      const C = shape[0];
      const L = shape.slice(1).reduce((a, b) => a * b, 1);
      const wData = randomArray(shape, seed++);
      // Ties for the channel max in one segment and in a later one (the first takes the scale
      // gradient), and a negative max elsewhere.
      if (L > 40) { wData[L + 1] = 1.5; wData[L + 2] = -1.5; wData[L + 37] = -1.5; wData[2 * L - 1] = -1.25; }
      const gData = randomArray(shape, seed++);
      for (const bits of [2, 4, 8]) {
        const w = tensor(wData, shape, true);
        const obs = new AbsMaxObserver(C);
        obs.observe(w);
        const ref = refWeight(wData, C, bits);
        assertExact(await obs.range.toArray(), ref.range, `observer range ${shape}`);
        const y = fakeQuantWeight(w, bits);
        assertExact(await y.toArray(), ref.y, `forward ${shape} bits ${bits}`);
        scope(() => y.backward(tensor(gData, shape)));
        assertExact(await w.grad!.toArray(), Array.from(gData, (v, i) => (ref.inside[i] ? v : 0)), `STE ${shape} bits ${bits}`);
        w.grad!.dispose();
        w.grad = null;
        scope(() => fakeQuantWeight(w, bits, { scaleGrad: true }).backward(tensor(gData, shape)));
        assertClose(await w.grad!.toArray(), refScaleGrad(wData, gData, C, bits), { rtol: 1e-5, atol: 1e-6 }, `scale gradient ${shape} bits ${bits}`);
        // The observer's range gives the same result as the weight's own.
        const y2 = fakeQuantWeight(w, bits, { range: obs.range });
        assertExact(await y2.toArray(), ref.y, `forward with the observer's range ${shape} bits ${bits}`);
        for (const t of [w.grad!, w, y, y2]) t.dispose();
        obs.dispose();
      }
    }
  });
});

test('changing the bit-width compiles nothing', async () => {
  const w = tensor(randomArray([4, 9], 41), [4, 9]);
  const x = tensor(randomArray([33], 42), [33]);
  const obs = new MinMaxObserver();
  obs.observe(x);
  scope(() => { fakeQuantWeight(w, 8); fakeQuantAct(x, 8, obs); });
  const before = engine().kernels.compiled;
  scope(() => { for (let b = 2; b <= 7; b++) { fakeQuantWeight(w, b); fakeQuantAct(x, b, obs); } });
  await engine().sync();
  assert.is(engine().kernels.compiled, before);
  for (const t of [w, x]) t.dispose();
  obs.dispose();
});

test('argument errors', () => {
  const w = tensor([1, 2], [2]);
  assert.throws(() => fakeQuantWeight(w, 17), /bit-width 17/);
  assert.throws(() => fakeQuantWeight(w, 2.5), /bit-width 2.5/);
  const obs = new AbsMaxObserver(3);
  assert.throws(() => fakeQuantWeight(w, 4, { range: obs.range }), /one value per output channel/);
  assert.throws(() => obs.observe(w), /2 output channels, the observer 3/);
  const labels = Tensor.fromArray([1, 2], [2], { dtype: 'i32' });
  assert.throws(() => fakeQuantWeight(labels, 4), /f32/);
  for (const t of [w, labels]) t.dispose();
  obs.dispose();
});

test('large activations: extremes in the ragged last vec4 and across workgroups; forward and mask of 70001 elements', async () => {
  const n = 70001; // 17501 vec4s, the last with one live lane: several workgroups and invocation blocks
  const data = randomArray([n], 61, -3, 5);
  data[n - 1] = 9; // the max in the last vec4's only live lane
  data[8192 * 3 + 5] = -6; // the min inside a later workgroup
  const x = tensor(data, [n], true);
  const mm = new MinMaxObserver();
  mm.observe(x);
  assert.equal(await mm.read(), { min: -6, max: 9 });
  // Quantize with a narrower range (from the first half), so the mask cuts in the second.
  const half = tensor(data.slice(0, n >> 1), [n >> 1]);
  const narrow = new MinMaxObserver();
  narrow.observe(half);
  const { min, max } = await narrow.read();
  const y = fakeQuantAct(x, 4, narrow);
  const ref = refAct(data, min, max, 4);
  assertExact(await y.toArray(), ref.y, 'fake-quant forward');
  const g = randomArray([n], 62);
  const gT = tensor(g, [n]);
  y.backward(gT);
  assertExact(await x.grad!.toArray(), g.map((v, i) => (ref.inside[i] ? v : 0)), 'straight-through gradient');
  assert.ok(ref.inside.includes(0), 'the range cut somewhere');
  for (const t of [x.grad!, x, half, y, gT]) t.dispose();
  mm.dispose();
  narrow.dispose();
});

test.run();
