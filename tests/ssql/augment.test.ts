// The GPU augmentation kernel against a float64 CPU reference written from torchvision's
// definitions, on small synthetic images.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Augmenter, JitterOp } from '../../ssql/data/augment.ts';
import type { AugmentOptions, AugmentParams } from '../../ssql/data/augment.ts';
import { assertClose, noLeaks, rng } from '../helpers.ts';

function randomImages(count: number, c: number, h: number, w: number, seed: number): Uint8Array {
  const r = rng(seed);
  return Uint8Array.from({ length: count * c * h * w }, () => Math.floor(r() * 256));
}

/** Options with every random step off unless the test turns it on. */
function plain(o: Partial<AugmentOptions> & Pick<AugmentOptions, 'channels' | 'height' | 'width'>): AugmentOptions {
  return {
    mean: Array(o.channels).fill(0), std: Array(o.channels).fill(1), scale: [1, 1], ratio: [1, 1],
    flipP: 0, jitterP: 0, grayscaleP: 0, brightness: 0, contrast: 0, saturation: 0, hue: 0, seed: 1, ...o,
  };
}

// ---- float64 reference ----

const grey = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

/** Python colorsys.rgb_to_hsv / hsv_to_rgb. */
function rgbToHsv(r: number, g: number, b: number): [number, number, number] {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  if (maxc === minc) return [0, 0, maxc];
  const s = (maxc - minc) / maxc;
  const rc = (maxc - r) / (maxc - minc);
  const gc = (maxc - g) / (maxc - minc);
  const bc = (maxc - b) / (maxc - minc);
  const h = r === maxc ? bc - gc : g === maxc ? 2 + rc - bc : 4 + gc - rc;
  return [(((h / 6) % 1) + 1) % 1, s, maxc];
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  if (s === 0) return [v, v, v];
  let i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - s * f);
  const t = v * (1 - s * (1 - f));
  i %= 6;
  return ([[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]] as const)[i].slice() as [number, number, number];
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/** One image through crop + bilinear resize, flip, jitter, grayscale, normalize, in float64. */
function reference(img: Uint8Array, C: number, H: number, W: number, out: number, p: AugmentParams, mean: number[], std: number[]): Float64Array {
  const px: number[][] = []; // [pixel][channel]
  const sample = (c: number, y: number, x: number) => img[(c * H + p.top + y) * W + p.left + x] / 255;
  for (let oy = 0; oy < out; oy++) {
    for (let ox = 0; ox < out; ox++) {
      // torch upsample_bilinear2d, align_corners=False, on the cropped image.
      const sy = Math.max(0, (oy + 0.5) * (p.height / out) - 0.5);
      const sx = Math.max(0, (ox + 0.5) * (p.width / out) - 0.5);
      const y0 = Math.min(Math.floor(sy), p.height - 1);
      const x0 = Math.min(Math.floor(sx), p.width - 1);
      const y1 = Math.min(y0 + 1, p.height - 1);
      const x1 = Math.min(x0 + 1, p.width - 1);
      const ly = sy - y0;
      const lx = sx - x0;
      const v: number[] = [];
      for (let c = 0; c < C; c++) {
        v.push((1 - ly) * ((1 - lx) * sample(c, y0, x0) + lx * sample(c, y0, x1)) + ly * ((1 - lx) * sample(c, y1, x0) + lx * sample(c, y1, x1)));
      }
      px.push(v);
    }
  }
  // Horizontal flip.
  if (p.flip) {
    for (let y = 0; y < out; y++) {
      const row = px.slice(y * out, (y + 1) * out).reverse();
      px.splice(y * out, out, ...row);
    }
  }
  const g = (v: number[]) => (C === 1 ? v[0] : grey(v[0], v[1], v[2]));
  if (p.jitter) {
    for (const op of p.order) {
      if (op === JitterOp.brightness) {
        for (const v of px) for (let c = 0; c < C; c++) v[c] = clamp01(v[c] * p.brightness);
      } else if (op === JitterOp.contrast) {
        const m = px.reduce((s, v) => s + g(v), 0) / px.length;
        for (const v of px) for (let c = 0; c < C; c++) v[c] = clamp01(p.contrast * v[c] + (1 - p.contrast) * m);
      } else if (op === JitterOp.saturation) {
        for (const v of px) {
          const gv = g(v);
          for (let c = 0; c < C; c++) v[c] = clamp01(p.saturation * v[c] + (1 - p.saturation) * gv);
        }
      } else if (op === JitterOp.hue) {
        for (const v of px) {
          const [h, s, val] = rgbToHsv(v[0], v[1], v[2]);
          const rgb = hsvToRgb((((h + p.hue) % 1) + 1) % 1, s, val);
          for (let c = 0; c < 3; c++) v[c] = rgb[c];
        }
      }
    }
  }
  if (p.grayscale) for (const v of px) v.fill(g(v));
  const res = new Float64Array(C * out * out);
  for (let c = 0; c < C; c++) for (let i = 0; i < out * out; i++) res[c * out * out + i] = (px[i][c] - mean[c]) / std[c];
  return res;
}

/** Runs one view on the GPU and checks every image against the reference. */
async function checkView(o: AugmentOptions, count: number, seed: number, tol = { rtol: 1e-4, atol: 2e-5 }): Promise<AugmentParams[]> {
  const aug = new Augmenter(o);
  const out = o.outSize ?? o.height;
  const imgs = randomImages(count, o.channels, o.height, o.width, seed);
  const batch = aug.uploadBatch(imgs, count);
  const t = aug.views(batch);
  assert.equal(t.shape, [count, o.channels, out, out]);
  const got = await t.toArray();
  const params = [...aug.lastParams()];
  const per = o.channels * out * out;
  const imgBytes = o.channels * o.height * o.width;
  for (let n = 0; n < count; n++) {
    const exp = reference(imgs.subarray(n * imgBytes, (n + 1) * imgBytes), o.channels, o.height, o.width, out, params[n], [...o.mean], [...o.std]);
    assertClose(got.subarray(n * per, (n + 1) * per), exp, tol, `image ${n} (${JSON.stringify(params[n])})`);
  }
  t.dispose();
  batch.dispose();
  return params;
}

// ---- tests ----

test('shapes and dtype: views, normalizeOnly, grey and RGB', async () => {
  for (const channels of [1, 3] as const) {
    const aug = new Augmenter({ channels, height: 10, width: 12, outSize: 8, mean: Array(channels).fill(0.5), std: Array(channels).fill(0.25), seed: 3 });
    const batch = aug.uploadBatch(randomImages(3, channels, 10, 12, 1), 3);
    assert.is(batch.data.dtype, 'u32');
    const v = aug.views(batch);
    const e = aug.normalizeOnly(batch);
    assert.equal([v.dtype, v.shape], ['f32', [3, channels, 8, 8]]);
    assert.equal([e.dtype, e.shape], ['f32', [3, channels, 10, 12]]);
    for (const x of [...await v.toArray(), ...await e.toArray()]) assert.ok(Number.isFinite(x));
    for (const t of [v, e, batch]) t.dispose();
  }
  assert.throws(() => new Augmenter({ channels: 3, height: 8, width: 8, mean: [0], std: [1, 1, 1] }), /mean and std need 3/);
  const a = new Augmenter({ channels: 1, height: 4, width: 4, mean: [0], std: [1] });
  assert.throws(() => a.uploadBatch(new Uint8Array(20), 2), /need 32 bytes, got 20/);
});

test('value ranges: with mean 0 / std 1 every output lies in [0, 1]; grayscale makes channels equal', async () => {
  const aug = new Augmenter({ channels: 3, height: 12, width: 12, outSize: 12, mean: [0, 0, 0], std: [1, 1, 1], jitterP: 1, seed: 5 });
  const batch = aug.uploadBatch(randomImages(6, 3, 12, 12, 2), 6);
  const v = await aug.views(batch).toArray();
  for (const x of v) assert.ok(x >= 0 && x <= 1, `value ${x} outside [0, 1]`);
  const g = new Augmenter({ channels: 3, height: 12, width: 12, mean: [0, 0, 0], std: [1, 1, 1], grayscaleP: 1, seed: 5 });
  const gv = await g.views(batch).toArray();
  const plane = 144;
  for (let n = 0; n < 6; n++) {
    for (let i = 0; i < plane; i++) {
      const r = gv[n * 3 * plane + i];
      assert.ok(Math.abs(gv[n * 3 * plane + plane + i] - r) < 1e-7 && Math.abs(gv[n * 3 * plane + 2 * plane + i] - r) < 1e-7, 'grey channels differ');
    }
  }
  batch.dispose();
});

test('normalizeOnly: (v / 255 - mean[c]) / std[c]', async () => {
  const mean = [0.4914, 0.4822, 0.4465];
  const std = [0.247, 0.243, 0.261];
  const aug = new Augmenter({ channels: 3, height: 5, width: 7, mean, std });
  const imgs = randomImages(2, 3, 5, 7, 9);
  const batch = aug.uploadBatch(imgs, 2);
  const got = await aug.normalizeOnly(batch).toArray();
  const exp = Array.from(imgs, (b, i) => (b / 255 - mean[Math.floor(i / 35) % 3]) / std[Math.floor(i / 35) % 3]);
  assertClose(got, exp, { rtol: 1e-6, atol: 1e-6 });
  batch.dispose();
});

test('geometry: scale [1, 1], ratio [1, 1] is the identity; flipP 1 mirrors exactly', async () => {
  const imgs = randomImages(2, 3, 9, 9, 4);
  const id = new Augmenter(plain({ channels: 3, height: 9, width: 9 }));
  const batch = id.uploadBatch(imgs, 2);
  const a = await id.views(batch).toArray();
  // Each pixel is b / 255: exact on lavapipe, but WGSL lets an f32 division be off by 2.5 ulp
  // (SwiftShader multiplies by the reciprocal: 7/255 comes out one ulp high), so allow 3 ulp.
  const ulp = (v: number) => (v === 0 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));
  imgs.forEach((b, i) => {
    const want = Math.fround(b / 255);
    assert.ok(Math.abs(a[i] - want) <= 3 * ulp(want), `pixel ${i}: ${a[i]}, expected ${want} (b = ${b})`);
  });
  assert.equal(id.lastParams()[0], { ...id.lastParams()[0], top: 0, left: 0, height: 9, width: 9, flip: false });
  const fl = new Augmenter(plain({ channels: 3, height: 9, width: 9, flipP: 1 }));
  const b = await fl.views(batch).toArray();
  for (let row = 0; row < 2 * 3 * 9; row++) {
    for (let x = 0; x < 9; x++) assert.is(b[row * 9 + x], a[row * 9 + 8 - x]);
  }
  batch.dispose();
});

test('RandomResizedCrop: bilinear resampling of random crops (up- and downsampling) matches float64', async () => {
  for (const outSize of [8, 16]) {
    const params = await checkView(plain({ channels: 3, height: 10, width: 13, outSize, scale: [0.2, 1], ratio: [3 / 4, 4 / 3], flipP: 0.5 }), 6, outSize);
    for (const p of params) {
      assert.ok(p.top + p.height <= 10 && p.left + p.width <= 13 && p.height > 0 && p.width > 0);
    }
  }
  // A horizontal gradient, mirrored.
  const aug = new Augmenter(plain({ channels: 1, height: 6, width: 16, outSize: 8, scale: [0.3, 0.6], ratio: [0.5, 2], flipP: 1, seed: 11 }));
  const img = Uint8Array.from({ length: 96 }, (_, i) => (i % 16) * 16);
  const batch = aug.uploadBatch(img, 1);
  const got = await aug.views(batch).toArray();
  assertClose(got, reference(img, 1, 6, 16, 8, aug.lastParams()[0], [0], [1]), { rtol: 1e-5, atol: 1e-6 });
  batch.dispose();
});

test('RandomResizedCrop sampler: bounds, area and ratio, centre-crop fallback', () => {
  const aug = new Augmenter({ channels: 3, height: 32, width: 32, mean: [0, 0, 0], std: [1, 1, 1], seed: 2 });
  let flips = 0;
  let jitters = 0;
  let greys = 0;
  const n = 2000;
  for (const p of aug.sample(n)) {
    assert.ok(p.top >= 0 && p.left >= 0 && p.top + p.height <= 32 && p.left + p.width <= 32);
    const area = p.height * p.width / 1024;
    assert.ok(area > 0.15 && area < 1.07, `area ${area}`);
    assert.ok(p.width / p.height > 0.6 && p.width / p.height < 1.6, `ratio ${p.width / p.height}`);
    flips += +p.flip;
    jitters += +p.jitter;
    greys += +p.grayscale;
    if (p.jitter) {
      assert.equal([...p.order].sort(), [0, 1, 2, 3]);
      assert.ok(p.brightness >= 0.6 && p.brightness <= 1.4 && p.contrast >= 0.6 && p.contrast <= 1.4 && p.saturation >= 0.6 && p.saturation <= 1.4 && Math.abs(p.hue) <= 0.1);
    }
  }
  assert.ok(Math.abs(flips / n - 0.5) < 0.05 && Math.abs(jitters / n - 0.8) < 0.05 && Math.abs(greys / n - 0.2) < 0.05, `${flips} ${jitters} ${greys}`);
  // No ratio in [2, 3] fits a 4x10 box of area 40 at scale 1: fallback. in_ratio 10/4 lies inside, so the whole image.
  const wide = new Augmenter(plain({ channels: 1, height: 4, width: 10, scale: [1, 1], ratio: [2, 3] }));
  assert.equal(wide.sample(1).map((p) => [p.top, p.left, p.height, p.width]), [[0, 0, 4, 10]]);
  // Square 10x10, ratio [2, 2]: in_ratio 1 < 2, so w = 10, h = round(10 / 2) = 5, centred.
  const sq = new Augmenter(plain({ channels: 1, height: 10, width: 10, scale: [1, 1], ratio: [2, 2] }));
  assert.equal(sq.sample(1).map((p) => [p.top, p.left, p.height, p.width]), [[2, 0, 5, 10]]);
  // 12 wide, 4 high, ratio [0.5, 1]: in_ratio 3 > 1, so h = 4, w = round(4 * 1) = 4, centred.
  const tall = new Augmenter(plain({ channels: 1, height: 4, width: 12, scale: [1, 1], ratio: [0.5, 1] }));
  assert.equal(tall.sample(1).map((p) => [p.top, p.left, p.height, p.width]), [[0, 4, 4, 4]]);
});

test('ColorJitter sub-ops one at a time, grayscale, and all together, vs float64', async () => {
  const base = { channels: 3 as const, height: 8, width: 8, jitterP: 1, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] };
  const cases: [string, Partial<AugmentOptions>][] = [
    ['brightness', { brightness: 0.4 }],
    ['contrast', { contrast: 0.4 }],
    ['saturation', { saturation: 0.4 }],
    ['hue', { hue: 0.1 }],
    ['hue wide', { hue: 0.5 }],
    ['grayscale', { jitterP: 0, grayscaleP: 1 }],
  ];
  for (const [name, o] of cases) {
    const params = await checkView(plain({ ...base, ...o }), 4, name.length, { rtol: 1e-4, atol: 1e-4 });
    const key = name.split(' ')[0];
    if (key !== 'grayscale') {
      assert.equal(params[0].order, [JitterOp[key as keyof typeof JitterOp]], `${name}: only that op is applied`);
    }
  }
  // Everything on (random order, crops, flips), the recipe's defaults; RGB then grey (brightness + contrast).
  await checkView({ ...base, outSize: 8, jitterP: 0.8, grayscaleP: 0.2, seed: 21 }, 8, 3, { rtol: 1e-4, atol: 1e-4 });
  const grey = await checkView({ channels: 1, height: 9, width: 9, outSize: 9, mean: [0.286], std: [0.353], jitterP: 1, seed: 4 }, 6, 7, { rtol: 1e-4, atol: 1e-4 });
  for (const p of grey) assert.equal([...p.order].sort(), [0, 1]);
});

// Workgroup shapes (ssql/data/augment.ts kernelShape), in quads of 4 pixels of a row: 16x16 and
// 20x20 in workgroups of 8 (8 and 13 quads an invocation), 33x33 of 16 (19, rows ending in a
// partial quad), 48x48 of 32 (18), 91x91 of 128 (17, partial quads).
test('contrast uses the image mean at its point in the pipeline, for every workgroup shape', async () => {
  for (const size of [16, 20, 33, 48, 91]) {
    await checkView(plain({ channels: 3, height: size, width: size, jitterP: 1, brightness: 0.4, contrast: [0.2, 1.8], saturation: 0.4, seed: size }), 3, size, { rtol: 1e-4, atol: 1e-4 });
  }
});

test('determinism: same seed, same views; another seed differs; state()/setState() replays', async () => {
  const o: AugmentOptions = { channels: 3, height: 10, width: 10, mean: [0, 0, 0], std: [1, 1, 1], seed: 42 };
  const imgs = randomImages(4, 3, 10, 10, 8);
  const a = new Augmenter(o);
  const b = new Augmenter(o);
  const c = new Augmenter({ ...o, seed: 43 });
  const batch = a.uploadBatch(imgs, 4);
  const a1 = await a.views(batch).toArray();
  const a2 = await a.views(batch).toArray();
  const b1 = await b.views(batch).toArray();
  const b2 = await b.views(batch).toArray();
  const c1 = await c.views(batch).toArray();
  assert.equal([...a1], [...b1]);
  assert.equal([...a2], [...b2]);
  assert.not.equal([...a1], [...a2]);
  assert.not.equal([...a1], [...c1]);
  const saved = a.state();
  const next = await a.views(batch).toArray();
  const restored = new Augmenter({ ...o, seed: 7 });
  restored.setState(saved);
  assert.equal([...await restored.views(batch).toArray()], [...next]);
  assert.throws(() => a.setState([0, 0, 0, 0]), /not all zero/);
  batch.dispose();
});

test('no GPU memory is left behind', async () => {
  const aug = new Augmenter({ channels: 1, height: 8, width: 8, mean: [0], std: [1] });
  await noLeaks(async () => {
    const batch = aug.uploadBatch(randomImages(3, 1, 8, 8, 1), 3);
    for (let i = 0; i < 3; i++) aug.views(batch).dispose();
    aug.normalizeOnly(batch).dispose();
    batch.dispose();
  });
});

test.run();
