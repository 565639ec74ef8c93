// Quantization-aware fine-tuning: frozen ranges behave as the reference's (a weight that grows
// past its calibration-time range is clamped; saved ranges come back exactly); fine-tuning at
// 2w4a beats PTQ on a small real task (Fashion-MNIST subset, tiny ResNet whose BN statistics
// come from real images); and the fine-tuned network exports to ONNX whose features and logits
// (onnxruntime) equal the engine's with the frozen ranges.
import * as ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, Tensor, noGrad, scope } from '../../engine/index.ts';
import { FASHION_MNIST_DIR, loadMnistDir } from '../../ssql/data/files-node.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';
import { computeFeatures, evaluate } from '../../ssql/eval/index.ts';
import { makeAugmenter } from '../../ssql/eval/images.ts';
import { captureWithRanges } from '../../ssql/export/model.ts';
import { toOnnx } from '../../ssql/export/onnx.ts';
import { quantizeWeightWithRange } from '../../ssql/export/quantize.ts';
import { finetune, testTop1 } from '../../ssql/finetune.ts';
import { QConv2d, QuantContext } from '../../ssql/models/quant.ts';
import { applyRanges, freezeWeightRanges, readRanges, unfreezeWeightRanges } from '../../ssql/models/ranges.ts';
import { ResNet, TINY_RESNET } from '../../ssql/models/resnet.ts';
import { normalization } from '../../ssql/train.ts';
import { assertClose, noLeaks } from '../helpers.ts';

function disposeEncoder(e: ResNet): void {
  for (const t of e.parameters()) {
    t.grad?.dispose();
    t.grad = null;
  }
  for (const t of e.stateDict().values()) t.dispose();
  e.ctx.dispose();
}

test('frozen weight range: a weight grown past it is clamped at the frozen scale; unfreeze returns to its own range', () => noLeaks(async () => {
  const ctx = new QuantContext();
  const conv = new QConv2d(ctx, 'w', 3, 4, 3, { bias: false, random: new Rng(2).next });
  const w0 = Float32Array.from(await conv.weight.toArray());
  conv.quantizer.freeze(conv.weight);
  const frozen = Float32Array.from(await conv.quantizer.frozenRange!.toArray());
  // The weight doubles (as training might move it); the frozen scale stays.
  const doubled = Float32Array.from(w0, (v) => v * 2);
  const source = Tensor.fromArray(doubled, conv.weight.shape);
  conv.loadStateDict({ weight: source });
  source.dispose();
  const quantized = async () => {
    const q = scope(() => ctx.withQuantization({ mode: 'quantize', wbit: 3, abit: 8 }, () => conv.quantizer.apply(conv.weight)));
    const v = Float32Array.from(await q.toArray());
    q.dispose();
    return v;
  };
  ctx.weightsChanged();
  const expect = quantizeWeightWithRange(doubled, 4, 3, frozen)!;
  const per = doubled.length / 4;
  assert.equal([...(await quantized())], [...Float32Array.from(expect.q, (v, i) => v * expect.scale[Math.floor(i / per)])]);
  assert.ok(expect.q.some((v) => v === -4) && expect.q.some((v) => v === 3), 'levels clamp at both ends');
  conv.quantizer.unfreeze();
  ctx.weightsChanged();
  const own = quantizeWeightWithRange(doubled, 4, 3, frozen.map((v) => v * 2))!;
  assert.equal([...(await quantized())], [...Float32Array.from(own.q, (v, i) => v * own.scale[Math.floor(i / per)])], 'its own range again');
  conv.weight.dispose();
  ctx.dispose();
}));

const cut = (s: LabeledImages, from: number, n: number): LabeledImages => ({ ...s, images: s.images.subarray(from * 784, (from + n) * 784), labels: s.labels.subarray(from, from + n), count: n });
const train = cut(loadMnistDir(FASHION_MNIST_DIR, 'train'), 0, 512);
const testSet = cut(loadMnistDir(FASHION_MNIST_DIR, 't10k'), 0, 256);

/** The tiny ResNet with seeded weights and BN running statistics from real images (train-mode
 * passes), standing in for a pretrained backbone: calibration runs BN in eval mode. */
function backbone(): ResNet {
  const encoder = new ResNet(new QuantContext(), TINY_RESNET, new Rng(1).next);
  const aug = makeAugmenter(train, 3);
  for (let b = 0; b < 16; b++) {
    scope(() => noGrad(() => {
      const batch = aug.uploadBatch(cut(train, (b * 64) % 448, 64).images, 64);
      encoder.features(aug.normalizeOnly(batch));
      batch.dispose();
    }));
  }
  return encoder;
}

test('ranges: read, applied to a fresh network, read back identical (weights frozen, activations exact)', () => noLeaks(async () => {
  const a = backbone();
  const b = backbone();
  await evaluate(a, train, testSet, { settings: ['fp'], epochs: 1 }); // a no-op on the ranges
  const calib = makeAugmenter(train, 0);
  a.eval();
  scope(() => noGrad(() => {
    a.ctx.newStep();
    a.ctx.withQuantization({ mode: 'calibrate' }, () => {
      const batch = calib.uploadBatch(train.images.subarray(0, 64 * 784), 64);
      a.features(calib.views(batch));
      batch.dispose();
    });
  }));
  freezeWeightRanges(a);
  const r = await readRanges(a);
  assert.equal(Object.keys(r.weights).length, 12, 'stem, 8 block convs, 3 shortcuts');
  assert.equal(Object.keys(r.activations).length, 9);
  assert.ok(Object.values(r.activations).every((v) => v !== null && v[0] <= v[1]));
  const json = JSON.parse(JSON.stringify(r));
  applyRanges(b, json, 'saved');
  assert.equal(await readRanges(b), r);
  assert.throws(() => applyRanges(b, { ...json, weights: { nope: [1] } }, 'saved'), /saved: weight range for 'nope', which this network does not have/);
  const { act1: _, ...missing } = json.activations;
  assert.throws(() => applyRanges(b, { ...json, activations: missing }, 'saved'), /saved: no activation range for 'act1'/);
  assert.throws(() => applyRanges(b, { ...json, weights: { conv1: [1, 2] } }, 'saved'), /'conv1' has 4 output channels, its weight range 2 values/);
  unfreezeWeightRanges(a);
  for (const e of [a, b]) disposeEncoder(e);
}));

test('fine-tuning at 2w4a beats PTQ on a Fashion-MNIST subset; the fine-tuned network exports to ONNX that onnxruntime runs to the same logits', () => noLeaks(async () => {
  const encoder = backbone();
  const ptq = (await evaluate(encoder, train, testSet, { settings: ['2w4a'], epochs: 30 })).results['2w4a'];
  const losses: number[] = [];
  const r = await finetune(encoder, train, testSet, '2w4a', { epochs: 8, lr: 0.1, batchSize: 64, onEpoch: (_e, _n, l) => losses.push(l) });
  assert.is(losses.length, 8);
  assert.ok(losses[7] < losses[0] - 0.3, `the training loss falls: ${losses.map((l) => l.toFixed(3)).join(', ')}`);
  assert.ok(r.top1 > ptq + 10, `fine-tuned ${r.top1.toFixed(2)}% vs PTQ ${ptq.toFixed(2)}%`);
  assert.is(r.setting, '2w4a');
  assert.is(Object.keys(r.ranges.weights).length, 12);
  assert.ok(r.ranges.weights.conv1.every((v) => v > 0));

  // The same network rebuilt from the ranges: the engine's features and logits at 2w4a ...
  applyRanges(encoder, r.ranges);
  encoder.eval();
  const engine = await encoder.ctx.withQuantization({ mode: 'quantize', wbit: 2, abit: 4 }, async () => {
    assert.is(await testTop1(encoder, r.head, testSet), r.top1, 'the saved ranges give the fine-tuned accuracy');
    return computeFeatures(encoder, testSet);
  });
  const logits = scope(() => noGrad(() => r.head.forward(Tensor.fromArray(engine.data, [engine.count, engine.dim]))));
  const engineLogits = await logits.toArray();
  logits.dispose();
  // ... and the exported model in onnxruntime.
  const model = await captureWithRanges(encoder, '2w4a', { head: r.head });
  const session = await ort.InferenceSession.create(toOnnx(model, { normalization: normalization(1) }), { graphOptimizationLevel: 'all' });
  const aug = makeAugmenter(testSet, 0);
  const x = scope(() => {
    const batch = aug.uploadBatch(testSet.images, testSet.count);
    const out = aug.normalizeOnly(batch);
    batch.dispose();
    return out;
  });
  const input = Float32Array.from(await x.toArray());
  x.dispose();
  const out = await session.run({ input: new ort.Tensor('float32', input, [testSet.count, 1, 28, 28]) });
  await session.release();
  // Equal to float rounding, except where a value lands within rounding of a quantizer's
  // boundary: the runtime's float sums and the GPU's (in another order) may then round to
  // neighbouring levels, and the flip moves that image's later values. Such flips are rare and
  // confined to an image or two of these 256; a real difference would reach most images.
  const images = (mismatch: number[], dim: number) => new Set(mismatch.map((i) => Math.floor(i / dim)));
  const far = (got: Float32Array, want: ArrayLike<number>, rtol: number, atol: number) =>
    [...got.keys()].filter((i) => !(Math.abs(got[i] - want[i]) <= rtol * Math.abs(want[i]) + atol));
  const featureMisses = far(out.features.data as Float32Array, engine.data, 1e-4, 1e-5);
  const logitMisses = far(out.logits.data as Float32Array, engineLogits, 1e-4, 1e-4);
  const flipped = images(featureMisses, engine.dim);
  assert.ok(flipped.size <= 2, `ONNX features vs engine (frozen ranges): ${featureMisses.length} values of ${flipped.size} images differ (first: ${featureMisses[0]})`);
  assert.ok([...images(logitMisses, engineLogits.length / testSet.count)].every((n) => flipped.has(n)), `ONNX logits differ in images whose features agree: ${logitMisses.slice(0, 5).join(', ')}`);
  unfreezeWeightRanges(encoder);
  for (const t of r.head.parameters()) t.dispose();
  disposeEncoder(encoder);
}));

test.run();
