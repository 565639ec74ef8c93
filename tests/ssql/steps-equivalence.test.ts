// The fast kernels change nothing a training run computes: 20 SSQL steps (and 10 SimSiam
// steps) of the tiny ResNet on a fixed seed give the same losses, to 1e-4, through the fast
// kernels (vec4 element-wise passes, split reductions, batch norm fused with the residual add,
// ReLU and the activation observer or fake quantization) as through the reference path
// (setReferenceKernels: the general strided element-wise and reduction kernels, and the
// unfused chain of batchNorm, add, relu, MinMaxObserver.observe and fakeQuantAct).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setReferenceKernels } from '../../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { assertClose } from '../helpers.ts';
import { run } from './steps.ts';

const data = loadDataset('fashion-mnist', 'train');
const config = (over: Partial<TrainConfig>): TrainConfig => ({
  ...DEFAULT_CONFIG, model: 'tiny', projDim: 32, predHidden: 8, subset: 320, epochs: 2, cropSize: 12, batchSize: 16, seed: 3, ...over,
});

async function losses(c: TrainConfig, steps: number, reference: boolean): Promise<number[]> {
  setReferenceKernels(reference);
  try {
    const trainer = new Trainer(c, data);
    const out = await run(trainer, steps);
    trainer.dispose();
    return out;
  } finally {
    setReferenceKernels(false);
  }
}

for (const [method, steps] of [['ssql', 20], ['simsiam', 10]] as const) {
  test(`${steps} ${method} steps: fast kernels and the reference path give the same losses (1e-4)`, async () => {
    const c = config({ method });
    const fast = await losses(c, steps, false);
    const reference = await losses(c, steps, true);
    assert.is(fast.length, steps);
    assert.ok(fast.every(Number.isFinite), `non-finite loss: ${fast.join(', ')}`);
    // The runs must also differ from step to step (a test that compares constants proves nothing).
    assert.ok(new Set(fast).size > steps / 2, `losses barely change: ${fast.join(', ')}`);
    assertClose(fast, reference, { rtol: 1e-4, atol: 1e-6 }, `${method} loss per step`);
  });
}

test.run();
