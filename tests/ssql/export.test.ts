// Deployment export: the CPU quantizer arithmetic equals the GPU kernels bit for bit; the ONNX
// model (decoded and run by an independent reference interpreter, tests/ssql/onnx-reference.ts)
// reproduces PyTorch's fake-quantized features of the official-layout fixture at 4w4a and FP
// and the engine's at 8w8a; the packed integer weights unpack to the same levels; files are
// written atomically.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MinMaxObserver, Tensor, fakeQuantAct, fakeQuantWeight, noGrad, scope } from '../../engine/index.ts';
import { Linear } from '../../engine/nn/index.ts';
import { Rng } from '../../engine/random.ts';
import { loadSafetensors } from '../../ssql/checkpoint/files-node.ts';
import { importTorchCheckpoint } from '../../ssql/checkpoint/import.ts';
import { decodeSafetensors, encodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import { Augmenter } from '../../ssql/data/augment.ts';
import { extractFeatures } from '../../ssql/eval/index.ts';
import type { ImageSet } from '../../ssql/eval/index.ts';
import { saveExport } from '../../ssql/export/export-node.ts';
import { captureQuantizedModel } from '../../ssql/export/model.ts';
import type { ExportModel } from '../../ssql/export/model.ts';
import { ONNX_OPSET, onnxZeroPoint, toOnnx } from '../../ssql/export/onnx.ts';
import { PACKED_FORMAT, packInts, packedWeights, unpackInts } from '../../ssql/export/packed.ts';
import { quantizeActRange, quantizeWeight, roundHalfEven } from '../../ssql/export/quantize.ts';
import { SimSiamNet } from '../../ssql/models/resnet.ts';
import { loadInto } from '../../ssql/train.ts';
import { assertClose, noLeaks, randomArray } from '../helpers.ts';
import { decodeOnnx, runOnnx } from './onnx-reference.ts';

interface Fixture {
  mean: number[];
  std: number[];
  image_shape: [number, number, number];
  calibration_images: number[];
  test_images: number[];
  features_fp: number[];
  features_4w4a: number[];
}

const fixtures = new URL('../fixtures/', import.meta.url);
const fx = JSON.parse(readFileSync(new URL('pth_fixtures.json', fixtures), 'utf8')) as Fixture;
const TOL = { rtol: 1e-4, atol: 1e-5 };

function imageSet(bytes: number[]): ImageSet {
  const [channels, height, width] = fx.image_shape;
  const count = bytes.length / (channels * height * width);
  return { images: Uint8Array.from(bytes), labels: new Int32Array(count), count, channels, height, width };
}

const identity = () => new Augmenter({
  channels: fx.image_shape[0] as 3, height: fx.image_shape[1], width: fx.image_shape[2], mean: fx.mean, std: fx.std,
  scale: [1, 1], ratio: [1, 1], flipP: 0, jitterP: 0, grayscaleP: 0,
});

/** The official-layout fixture checkpoint (tests/fixtures/make_pth_fixtures.py) in a SimSiamNet. */
function fixtureNet(): SimSiamNet {
  const { tensors, report } = importTorchCheckpoint(readFileSync(new URL('ssql_official_resnet18.pth.tar', fixtures)), 'fixture');
  const a = report.architecture;
  const net = new SimSiamNet({ backbone: a.backbone, projDim: a.projDim!, predHidden: a.predHidden! }, new Rng(3).next);
  loadInto(net, tensors, 'fixture');
  return net;
}

function disposeNet(net: SimSiamNet): void {
  for (const t of net.stateDict().values()) t.dispose();
  net.ctx.dispose();
}

/** The normalized test images, as the engine computes them. */
async function normalizedInput(aug: Augmenter, set: ImageSet): Promise<Float64Array> {
  const x = scope(() => {
    const batch = aug.uploadBatch(set.images, set.count);
    const out = aug.normalizeOnly(batch);
    batch.dispose();
    return out;
  });
  const data = Float64Array.from(await x.toArray());
  x.dispose();
  return data;
}

// ---- the arithmetic ---------------------------------------------------------------------

test('quantizeWeight: integer levels x scales equal the GPU fake quantization bit for bit, 2-8 bits; a zero channel passes through', () => noLeaks(async () => {
  const shape = [5, 3, 3, 3];
  const w = Float32Array.from(randomArray(shape, 11, -0.7, 0.9));
  for (let bits = 2; bits <= 8; bits++) {
    const q = quantizeWeight(w, 5, bits)!;
    const gpu = scope(() => fakeQuantWeight(Tensor.fromArray(w, shape), bits));
    const got = await gpu.toArray();
    gpu.dispose();
    const per = w.length / 5;
    const cpu = Float32Array.from(q.q, (v, i) => v * q.scale[Math.floor(i / per)]);
    assert.equal([...cpu], [...got], `${bits} bits`);
    assert.ok(q.q.every((v) => v >= -(2 ** (bits - 1)) && v <= 2 ** (bits - 1) - 1));
  }
  const zero = w.slice();
  zero.fill(0, 27, 54);
  assert.is(quantizeWeight(zero, 5, 4), null);
  assert.is(roundHalfEven(2.5), 2);
  assert.is(roundHalfEven(-2.5), -2);
  assert.is(roundHalfEven(3.5), 4);
  assert.is(roundHalfEven(-3.5), -4);
  // docs/method.md#quantizer-arithmetic's example: b = 4, channel [-7.5, -2.5, 3.5, 7.5] gives s = 1 and q = [-8, -2, 4, 7].
  const ex = quantizeWeight(Float32Array.from([-7.5, -2.5, 3.5, 7.5]), 1, 4)!;
  assert.equal([...ex.q], [-8, -2, 4, 7]);
  assert.equal([...ex.scale], [1]);
}));

test('quantizeActRange + Clip/QuantizeLinear/DequantizeLinear semantics equal the GPU activation fake quantization, 2-8 bits', () => noLeaks(async () => {
  const n = 999;
  const x = Float32Array.from(randomArray([n], 5, -0.3, 2.2));
  const calib = Float32Array.from(randomArray([64], 6, -0.2, 1.9)); // narrower: values outside get clamped
  for (let bits = 2; bits <= 8; bits++) {
    const obs = new MinMaxObserver();
    const y = scope(() => {
      obs.observe(Tensor.fromArray(calib, [64]));
      return fakeQuantAct(Tensor.fromArray(x, [n]), bits, obs);
    });
    const got = await y.toArray();
    y.dispose();
    const { min, max } = await obs.read();
    obs.dispose();
    const q = quantizeActRange(min, max, bits)!;
    const z = onnxZeroPoint(q.zeroPoint, bits, 'test');
    const lo = Math.fround((0 - q.zeroPoint) * q.scale);
    const hi = Math.fround((2 ** bits - 1 - q.zeroPoint) * q.scale);
    // What the exported nodes compute (ONNX: y = saturate(round(x / s) + zp); x = (y - zp) * s).
    const onnx = Float32Array.from(x, (v) => {
      const c = bits < 8 ? Math.min(hi, Math.max(lo, v)) : v;
      const level = Math.min(255, Math.max(0, roundHalfEven(Math.fround(c / q.scale)) + z));
      return Math.fround((level - z) * q.scale);
    });
    assert.equal([...onnx], [...got], `${bits} bits`);
  }
  assert.is(quantizeActRange(1, 1, 4), null, 'zero range passes through');
  assert.is(onnxZeroPoint(3, 4, 'a'), 3);
  assert.is(onnxZeroPoint(-5, 4, 'a'), 0, 'all-positive range: any zero point keeping 16 levels in [0, 255]');
  assert.throws(() => onnxZeroPoint(-300, 4, 'layer1.0.act1'), /layer1\.0\.act1: zero point -300 at 4 bits/);
}));

test('packInts/unpackInts: LSB-first b-bit fields, round trip at 2-8 bits', () => {
  assert.equal([...packInts([1, -2], 4)], [0xe1]);
  assert.equal([...packInts([-1, 0, 1, -2], 2)], [0b10010011]);
  for (let bits = 2; bits <= 8; bits++) {
    const r = new Rng(bits).next;
    const v = Array.from({ length: 37 }, () => Math.floor(r() * 2 ** bits) - 2 ** (bits - 1));
    const packed = packInts(v, bits);
    assert.is(packed.length, Math.ceil((37 * bits) / 8));
    assert.equal([...unpackInts(packed, bits, 37)], v, `${bits} bits`);
  }
  assert.throws(() => packInts([8], 4), /value 8 at 0 does not fit 4 signed bits/);
});

// ---- the exported model ------------------------------------------------------------------

function countOps(model: ReturnType<typeof decodeOnnx>): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of model.nodes) c[n.op] = (c[n.op] ?? 0) + 1;
  return c;
}

async function exportAndRun(net: SimSiamNet, setting: string, head?: Linear): Promise<{ model: ExportModel; onnx: ReturnType<typeof decodeOnnx>; out: Record<string, Float64Array> }> {
  const aug = identity();
  const model = await captureQuantizedModel(net.encoder, setting, { calibration: imageSet(fx.calibration_images), augmenter: aug, head });
  const onnx = decodeOnnx(toOnnx(model, { normalization: { mean: fx.mean, std: fx.std } }));
  const set = imageSet(fx.test_images);
  const input = await normalizedInput(aug, set);
  const [c, h, w] = fx.image_shape;
  const outputs = runOnnx(onnx, { input: { dims: [set.count, c, h, w], type: 1, data: input } });
  return { model, onnx, out: Object.fromEntries(Object.entries(outputs).map(([k, v]) => [k, v.data])) };
}

test('ONNX 4w4a: QDQ graph of the official-layout ResNet-18 gives PyTorch\'s fake-quantized features (and the engine\'s)', () => noLeaks(async () => {
  const net = fixtureNet();
  const { model, onnx, out } = await exportAndRun(net, '4w4a');
  assert.is(onnx.opset, ONNX_OPSET);
  assert.is(onnx.irVersion, 7);
  assert.equal(onnx.inputs, [{ name: 'input', dims: ['N', 3, 'H', 'W'] }]);
  assert.equal(onnx.outputs, [{ name: 'features', dims: ['N', 64] }]);
  assert.is(onnx.metadata.get('setting'), '4w4a');
  // 20 convs (stem, 16 in blocks, 3 shortcuts); 17 activation quantizers (stem 8-bit: no Clip).
  assert.equal(countOps(onnx), {
    DequantizeLinear: 20 + 17, Conv: 20, BatchNormalization: 20, Relu: 17, Clip: 16, QuantizeLinear: 17,
    Add: 8, GlobalAveragePool: 1, Flatten: 1,
  });
  const stemW = onnx.initializers.get('conv1.weight_quantized')!;
  assert.is(stemW.type, 3);
  assert.ok(stemW.data.some((v) => v < -8 || v > 7), 'stem weights use 8 bits');
  const blockW = onnx.initializers.get('layer1.0.conv1.weight_quantized')!;
  assert.ok(blockW.data.every((v) => v >= -8 && v <= 7), 'block weights are 4-bit levels');
  assertClose(out.features, fx.features_4w4a, TOL, 'ONNX 4w4a vs PyTorch');
  const engine = await extractFeatures(net.encoder, imageSet(fx.test_images), '4w4a', { calibration: imageSet(fx.calibration_images), augmenter: identity() });
  assertClose(out.features, engine.data, TOL, 'ONNX 4w4a vs engine');
  assert.is(model.stem.act!.quant!.bits, 8);
  disposeNet(net);
}));

test('ONNX FP and 8w8a with a linear head: FP equals PyTorch, 8w8a the engine, logits the head on the features', () => noLeaks(async () => {
  const net = fixtureNet();
  const fp = await exportAndRun(net, 'fp');
  assert.equal(countOps(fp.onnx), { Conv: 20, BatchNormalization: 20, Relu: 17, Add: 8, GlobalAveragePool: 1, Flatten: 1 });
  assertClose(fp.out.features, fx.features_fp, TOL, 'ONNX FP vs PyTorch');

  const head = new Linear(64, 10, { random: new Rng(9).next });
  const q8 = await exportAndRun(net, '8w8a', head);
  assert.is(countOps(q8.onnx).Clip, undefined, '8 bits: the UINT8 saturation is the clamp');
  const engine = await extractFeatures(net.encoder, imageSet(fx.test_images), '8w8a', { calibration: imageSet(fx.calibration_images), augmenter: identity() });
  // At 8 bits (255 levels) no seed keeps every one of ~60k activations clear of a rounding
  // boundary, so a level may flip between float64 sums here and float32 on the GPU; a flip in
  // the last quantizer moves a pooled feature by at most its step.
  const lastStep = q8.model.blocks[q8.model.blocks.length - 1].out.quant!.scale;
  assertClose(q8.out.features, engine.data, { rtol: 1e-4, atol: lastStep }, 'ONNX 8w8a vs engine');
  const near = q8.out.features.filter((v, i) => Math.abs(v - engine.data[i]) <= 1e-4 * Math.abs(v) + 1e-5).length;
  assert.ok(near >= 0.95 * engine.data.length, `${near} of ${engine.data.length} features within 1e-4`);
  const logits = scope(() => noGrad(() => head.forward(Tensor.fromArray(q8.out.features, [engine.count, 64]))));
  assertClose(q8.out.logits, await logits.toArray(), TOL, 'logits');
  logits.dispose();
  for (const t of head.parameters()) t.dispose();
  disposeNet(net);
}));

test('packed weights: 4-bit levels unpack to the ONNX integers; scales, BN, activation parameters; safetensors round trip', () => noLeaks(async () => {
  const net = fixtureNet();
  const model = await captureQuantizedModel(net.encoder, '4w4a', { calibration: imageSet(fx.calibration_images), augmenter: identity() });
  const { tensors, metadata } = packedWeights(model);
  const back = decodeSafetensors(encodeSafetensors(tensors, metadata));
  assert.is(back.metadata.format, PACKED_FORMAT);
  const layers = JSON.parse(back.metadata.layers) as Record<string, { shape: number[]; bits: number }>;
  assert.equal(layers.conv1, { shape: [8, 3, 3, 3], bits: 8 });
  assert.equal(layers['layer2.0.downsample.0'], { shape: [16, 8, 1, 1], bits: 4 });
  const onnx = decodeOnnx(toOnnx(model));
  for (const [name, info] of Object.entries(layers)) {
    const packed = back.tensors[`${name}.weight.packed`];
    const count = info.shape.reduce((a, b) => a * b, 1);
    assert.is(packed.data.length, Math.ceil((count * info.bits) / 8), `${name} packed size`);
    assert.equal([...unpackInts(packed.data, info.bits, count)], [...onnx.initializers.get(`${name}.weight_quantized`)!.data], `${name} levels`);
    assert.equal([...new Float32Array(new Uint8Array(back.tensors[`${name}.weight.scale`].data).buffer)], [...onnx.initializers.get(`${name}.weight_scale`)!.data], `${name} scales`);
  }
  const acts = JSON.parse(back.metadata.activations) as Record<string, { bits: number; scale: number; zero_point: number }>;
  assert.is(Object.keys(acts).length, 17);
  assert.equal([acts.act1.bits, acts['layer4.1.act_out'].bits], [8, 4]);
  assert.is(acts['layer1.0.act1'].scale, onnx.initializers.get('layer1.0.act1.scale')!.data[0]);
  assert.ok(back.tensors['layer3.1.bn2.running_var']);
  // 4-bit block weights take half a byte each.
  const conv = back.tensors['layer4.1.conv2.weight.packed'];
  assert.is(conv.data.length, (64 * 64 * 9) / 2);
  disposeNet(net);
}));

test('saveExport writes the ONNX model and the packed weights atomically; export without calibration is refused', () => noLeaks(async () => {
  const net = fixtureNet();
  try {
    await captureQuantizedModel(net.encoder, '4w4a');
    assert.unreachable('no calibration');
  } catch (e) {
    assert.match((e as Error).message, /export at 4w4a: calibration images are required/);
  }
  const model = await captureQuantizedModel(net.encoder, '2w4a', { calibration: imageSet(fx.calibration_images), augmenter: identity() });
  const dir = mkdtempSync(join(tmpdir(), 'ssql-export-'));
  try {
    saveExport(model, { onnx: join(dir, 'model.onnx'), weights: join(dir, 'weights.safetensors') });
    assert.equal(readdirSync(dir).sort(), ['model.onnx', 'weights.safetensors']);
    const onnx = decodeOnnx(new Uint8Array(readFileSync(join(dir, 'model.onnx'))));
    assert.is(onnx.metadata.get('setting'), '2w4a');
    const w = onnx.initializers.get('layer1.0.conv1.weight_quantized')!;
    assert.ok(w.data.every((v) => v >= -2 && v <= 1), '2-bit levels');
    const { metadata } = loadSafetensors(join(dir, 'weights.safetensors'));
    assert.is(metadata.setting, '2w4a');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  disposeNet(net);
}));

test.run();
