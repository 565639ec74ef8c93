// The exported ONNX model in the standard runtime (onnxruntime-node, a test dependency): on a
// batch of real Fashion-MNIST test images, its features equal the engine's fake-quantized
// features at 8w8a and 4w4a, with graph optimization disabled (the graph as written) and at
// 'all' (the runtime's fusions, QDQ handling included). The network is the small ResNet with
// seeded weights whose BN running statistics come from real training images (train-mode passes),
// so every layer sees realistic activations; calibration is evaluation's (one augmented
// training batch).
import * as ort from 'onnxruntime-node';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { noGrad, scope } from '../../engine/index.ts';
import { Rng } from '../../engine/random.ts';
import { FASHION_MNIST_DIR, loadMnistDir } from '../../ssql/data/files-node.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';
import { extractFeatures } from '../../ssql/eval/index.ts';
import { makeAugmenter } from '../../ssql/eval/images.ts';
import { captureQuantizedModel } from '../../ssql/export/model.ts';
import type { ExportModel } from '../../ssql/export/model.ts';
import { toOnnx } from '../../ssql/export/onnx.ts';
import { QuantContext } from '../../ssql/models/quant.ts';
import { ResNet, SMALL_RESNET } from '../../ssql/models/resnet.ts';
import { normalization } from '../../ssql/train.ts';
import { assertClose } from '../helpers.ts';

const BATCH = 64;

function first(set: LabeledImages, n: number, from = 0): LabeledImages {
  const per = set.channels * set.height * set.width;
  return { ...set, images: set.images.subarray(from * per, (from + n) * per), labels: set.labels.subarray(from, from + n), count: n };
}

const train = loadMnistDir(FASHION_MNIST_DIR, 'train');
const testImages = first(loadMnistDir(FASHION_MNIST_DIR, 't10k'), BATCH);

/** The small ResNet with seeded weights and BN statistics from 8 batches of real images. */
function network(): ResNet {
  const encoder = new ResNet(new QuantContext(), SMALL_RESNET, new Rng(21).next);
  const aug = makeAugmenter(train, 3);
  for (let b = 0; b < 8; b++) {
    scope(() => noGrad(() => {
      const batch = aug.uploadBatch(first(train, 128, 1000 + 128 * b).images, 128);
      encoder.features(aug.normalizeOnly(batch));
      batch.dispose();
    }));
  }
  return encoder;
}

/** The engine's normalized input of the test batch (what the ONNX model takes). */
async function normalizedInput(): Promise<Float32Array> {
  const aug = makeAugmenter(testImages, 0);
  const x = scope(() => {
    const batch = aug.uploadBatch(testImages.images, BATCH);
    const out = aug.normalizeOnly(batch);
    batch.dispose();
    return out;
  });
  const data = Float32Array.from(await x.toArray());
  x.dispose();
  return data;
}

async function runOrt(bytes: Uint8Array, input: Float32Array, level: 'disabled' | 'all'): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: level, executionProviders: ['cpu'] });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, [BATCH, 1, 28, 28]) });
    return out.features.data as Float32Array;
  } finally {
    await session.release();
  }
}

const encoder = network();
const input = await normalizedInput();

async function engineAndOnnx(setting: string): Promise<{ model: ExportModel; engine: Float32Array; onnx: Uint8Array }> {
  // A fresh augmenter with the same seed for each: the same calibration batch both times.
  const calib = { calibration: train, calibBatch: 256, seed: 0 };
  const model = await captureQuantizedModel(encoder, setting, { ...calib, augmenter: makeAugmenter(train, 0) });
  const f = await extractFeatures(encoder, testImages, setting, { ...calib, augmenter: makeAugmenter(train, 0) });
  assert.is(f.dim, 128);
  return { model, engine: f.data, onnx: toOnnx(model, { normalization: normalization(1) }) };
}

const FLOAT = { rtol: 1e-4, atol: 1e-5 };

test('onnxruntime 4w4a: features equal the engine\'s fake-quantized ones to float rounding, optimization disabled and all', async () => {
  const { model, engine, onnx } = await engineAndOnnx('4w4a');
  assert.is(model.blocks[0].path[0].act!.quant!.bits, 4);
  assert.ok(engine.some((v) => v !== 0), 'non-trivial features');
  for (const level of ['disabled', 'all'] as const) {
    const got = await runOrt(onnx, input, level);
    assertClose(got, engine, FLOAT, `onnxruntime (${level}) vs engine at 4w4a`);
  }
});

test('onnxruntime 8w8a: features equal the engine\'s, allowing a level flip in the last quantizer; FP too', async () => {
  const { model, engine, onnx } = await engineAndOnnx('8w8a');
  // At 8 bits (255 levels) no seed keeps every one of ~10^5 activations clear of a rounding
  // boundary, so a level may flip between the runtime's float sums and the GPU's; a flip in the
  // last quantizer moves a pooled feature by at most that quantizer's step.
  const lastStep = model.blocks[model.blocks.length - 1].out.quant!.scale;
  for (const level of ['disabled', 'all'] as const) {
    const got = await runOrt(onnx, input, level);
    assertClose(got, engine, { rtol: 1e-4, atol: lastStep }, `onnxruntime (${level}) vs engine at 8w8a`);
    // Flips are rare: most features are equal to float rounding, and the mean difference is a
    // small fraction of one step (one flip in every feature would be 1/16 of a step: 4x4 pooled).
    const near = got.filter((v, i) => Math.abs(v - engine[i]) <= 1e-4 * Math.abs(engine[i]) + 1e-5).length;
    assert.ok(near >= 0.9 * engine.length, `${level}: ${near} of ${engine.length} features within float rounding`);
    const meanDiff = got.reduce((s, v, i) => s + Math.abs(v - engine[i]), 0) / got.length;
    assert.ok(meanDiff <= 0.02 * lastStep, `${level}: mean difference ${meanDiff}, ${meanDiff / lastStep} of the last step`);
  }
  const fp = await engineAndOnnx('fp');
  for (const level of ['disabled', 'all'] as const) assertClose(await runOrt(fp.onnx, input, level), fp.engine, FLOAT, `onnxruntime (${level}) vs engine at FP`);
});

test('release the network', () => {
  for (const t of encoder.stateDict().values()) t.dispose();
  encoder.ctx.dispose();
});

test.run();
