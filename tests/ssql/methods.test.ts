// The method registry (ssql/methods/registry.ts): names are unique and looked up with a clear
// error, every entry trains through the Trainer (bits drawn exactly when the entry is
// quantized, SGD holding exactly its trainable parameters), a quantized entry refuses a step
// without bits, and the bit sampler's ranges include both ends. A new entry is covered by the
// per-method test below without further changes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, Tensor } from '../../engine/index.ts';
import { BitSampler } from '../../ssql/methods/method.ts';
import { METHODS, METHOD_NAMES, methodByName } from '../../ssql/methods/registry.ts';
import { TINY_RESNET } from '../../ssql/models/resnet.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';
import { run } from './steps.ts';
import { noLeaks } from '../helpers.ts';

test('registry: unique names, the default first, lookup by name with a clear error', () => {
  assert.equal(METHOD_NAMES, METHODS.map((m) => m.name));
  assert.is(new Set(METHOD_NAMES).size, METHODS.length, 'names are unique');
  assert.equal(METHOD_NAMES, ['ssql', 'simsiam', 'byol', 'ssql-byol', 'mocov2', 'ssql-moco']);
  assert.is(METHOD_NAMES[0], DEFAULT_CONFIG.method);
  for (const m of METHODS) {
    assert.is(methodByName(m.name), m);
    assert.ok(m.label.length > 0 && m.description.length > 0, `${m.name} has a label and a description`);
  }
  assert.throws(() => methodByName('byol2'), /unknown method 'byol2': use one of ssql, simsiam, byol, ssql-byol, mocov2, ssql-moco/);
});

test('BitSampler: both ends of each range are drawn, nothing outside', () => {
  const sampler = new BitSampler([2, 8], [4, 8]);
  const rng = new Rng(1);
  const w = new Set<number>();
  const a = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const b = sampler.draw(rng);
    w.add(b.wbit);
    a.add(b.abit);
  }
  assert.equal([...w].sort((x, y) => x - y), [2, 3, 4, 5, 6, 7, 8]);
  assert.equal([...a].sort((x, y) => x - y), [4, 5, 6, 7, 8]);
});

/** 16 random grey 8x8 images. */
function synthetic(): LabeledImages {
  const r = new Rng(11);
  return {
    images: Uint8Array.from({ length: 16 * 64 }, () => r.int(0, 256)),
    labels: Int32Array.from({ length: 16 }, (_, i) => i % 10), count: 16, channels: 1, height: 8, width: 8,
  };
}
const data = synthetic();

for (const method of METHODS) {
  test(`${method.name}: trains through the Trainer as its entry says`, () => noLeaks(async () => {
    const trainer = new Trainer({ ...DEFAULT_CONFIG, method: method.name, model: 'tiny', projDim: 8, predHidden: 4, batchSize: 4, epochs: 1, seed: 3 }, data);
    assert.is(trainer.method, method);
    const trainable = new Set(trainer.opt.params);
    const all = trainer.net.parameters();
    // Each trainable parameter is the network's, and each of the network's with requiresGrad is trained.
    assert.ok([...trainable].every((p) => all.includes(p)), 'SGD holds only the network\'s parameters');
    assert.equal(all.filter((p) => p.requiresGrad).length, trainable.size, 'SGD holds every parameter that takes a gradient');
    for (let i = 0; i < 2; i++) {
      const r = trainer.step();
      assert.is(r.bits !== null, method.quantized, 'a bit pair is drawn exactly for a quantized method');
      assert.is(r.quant !== null, method.quantized, 'a quantized term exactly for a quantized method');
      assert.ok(Number.isFinite(await r.loss.item()));
      for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
    }
    assert.equal(trainer.net.ctx.mode, 'off', 'the step leaves quantization off');
    assert.ok((await run(trainer, 1)).every(Number.isFinite));
    trainer.dispose();
  }));
}

test('a quantized method refuses a step without a bit pair', () => {
  const quantized = METHODS.find((m) => m.quantized)!;
  const bound = quantized.create({ backbone: TINY_RESNET, projDim: 8, predHidden: 4 }, new Rng(0).next);
  const x = Tensor.fromArray(new Float32Array(2 * 64), [2, 1, 8, 8]);
  try {
    assert.throws(() => bound.losses(x, x, null), new RegExp(`method '${quantized.name}' is quantized: its step needs a bit pair`));
  } finally {
    for (const t of [x, ...bound.net.stateDict().values()]) t.dispose();
    bound.net.disposeContexts();
  }
});

test.run();
