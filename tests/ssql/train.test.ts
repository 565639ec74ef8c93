// Training on a Fashion-MNIST subset with the tiny ResNet: the loss falls, runs are
// deterministic, a resumed run is bit-identical to a straight one, and memory stays flat.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { engine } from '../../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { checkResumeIsExact, run } from './steps.ts';

const data = loadDataset('fashion-mnist', 'train');
const tiny = (over: Partial<TrainConfig>): TrainConfig => ({
  ...DEFAULT_CONFIG, model: 'tiny', projDim: 32, predHidden: 8, subset: 2048, epochs: 10, cropSize: 12, ...over,
});

test('50 SSQL steps on a Fashion-MNIST subset lower the loss', async () => {
  const trainer = new Trainer(tiny({ method: 'ssql', batchSize: 16, lr: 0.05 }), data);
  const losses = await run(trainer, 50);
  trainer.dispose();
  const mean = (xs: number[]) => xs.reduce((s, v) => s + v, 0) / xs.length;
  const first = mean(losses.slice(0, 10));
  const last = mean(losses.slice(-10));
  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses.join(', ')}`);
  assert.ok(last < first - 0.05, `loss did not fall: first 10 steps ${first.toFixed(4)}, last 10 ${last.toFixed(4)}`);
});

test('resume: 20 steps straight equal 10 steps, checkpoint, restore, 10 steps (bit-identical); runs are deterministic', async () => {
  const config = tiny({ method: 'ssql', batchSize: 8, subset: 96, epochs: 3 }); // 12 steps an epoch: crosses an epoch
  const { losses: lossesA } = await checkResumeIsExact(config, data, 10);
  const other = new Trainer({ ...config, seed: 1 }, data);
  const lossesC = await run(other, 3);
  other.dispose();
  assert.not.equal(lossesC, lossesA.slice(0, 3), 'another seed gives other losses');
});

test('a restore with another configuration is refused with the mismatching key', async () => {
  const a = new Trainer(tiny({ batchSize: 8, subset: 64 }), data);
  const ckpt = await a.checkpoint();
  a.dispose();
  const b = new Trainer(tiny({ batchSize: 16, subset: 64 }), data);
  assert.throws(() => b.restore(ckpt.tensors, ckpt.metadata, 'ckpt.safetensors'), /^ckpt\.safetensors: cannot resume: --batch: the checkpoint was made with --batch 8, this run has 16 \(batchSize\)$/);
  b.dispose();
});

test('200 SSQL steps leave GPU memory flat (no new buffers after warm-up)', async () => {
  const trainer = new Trainer(tiny({ method: 'ssql', batchSize: 4, subset: 400, epochs: 2 }), data);
  const pool = engine().pool;
  await run(trainer, 10);
  const live = pool.leakCheckBytes;
  const total = pool.liveBytes + pool.pooledBytes; // a GC finalization moves live to pooled
  const allocations = pool.allocations;
  await run(trainer, 190);
  await engine().sync();
  assert.is(pool.leakCheckBytes, live, 'live bytes grew');
  assert.is(pool.liveBytes + pool.pooledBytes, total, 'pooled bytes grew');
  assert.is(pool.allocations, allocations, 'new GPU buffers were allocated after warm-up');
  trainer.dispose();
});

test.run();
