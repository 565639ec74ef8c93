// The fast kernels change nothing a training step computes. Along one trajectory of 20 SSQL
// steps (and 10 SimSiam steps) of the tiny ResNet, each step is taken twice from the same
// state (weights, momentum, random generators): once through the reference path
// (setReferenceKernels: the general strided element-wise and reduction kernels, and the
// unfused chain of batchNorm, add, relu, MinMaxObserver.observe and fakeQuantAct), once
// through the fast kernels (vec4 element-wise passes, split reductions, batch norm fused with
// the residual add, ReLU and the activation observer or fake quantization). Losses and every
// gradient must agree to float rounding at every step.
//
// Each step starts from the same state rather than letting two runs go their own way: training
// amplifies rounding differences (a rounding flip in a 2-bit quantizer changes the next step's
// loss by ~1e-3, and ten steps later the runs are unrelated), so comparing two free-running
// trajectories tests chaos, not the kernels.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setReferenceKernels } from '../../engine/index.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import { loadDataset } from '../../ssql/data/datasets-node.ts';
import { assertClose } from '../helpers.ts';

const data = loadDataset('fashion-mnist', 'train');
const config = (over: Partial<TrainConfig>): TrainConfig => ({
  ...DEFAULT_CONFIG, model: 'tiny', projDim: 32, predHidden: 8, subset: 320, epochs: 2, cropSize: 12, batchSize: 16, seed: 3, ...over,
});

interface StepResult { loss: number; grads: Float32Array[] }

/** One step through the chosen path; reads the loss and every trainable parameter's gradient. */
async function step(trainer: Trainer, reference: boolean): Promise<StepResult> {
  setReferenceKernels(reference);
  try {
    const r = trainer.step();
    const loss = await r.loss.item();
    for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
    const grads: Float32Array[] = [];
    for (const p of trainer.bound.trainable) grads.push(Float32Array.from(await p.grad!.toArray()));
    return { loss, grads };
  } finally {
    setReferenceKernels(false);
  }
}

for (const [method, steps] of [['ssql', 20], ['simsiam', 10]] as const) {
  test(`${steps} ${method} steps, each from the same state: fast kernels and the reference path give the same loss and gradients`, async () => {
    const trainer = new Trainer(config({ method }), data);
    const names = trainer.net.namedParameters().filter(([, p]) => trainer.bound.trainable.includes(p)).map(([n]) => n);
    assert.is(names.length, trainer.bound.trainable.length);
    const losses: number[] = [];
    try {
      for (let s = 0; s < steps; s++) {
        const state = await trainer.checkpoint();
        const reference = await step(trainer, true);
        trainer.restore(state.tensors, state.metadata);
        const fast = await step(trainer, false);
        losses.push(fast.loss);
        assertClose([fast.loss], [reference.loss], { rtol: 1e-5, atol: 1e-7 }, `${method} step ${s}: loss`);
        fast.grads.forEach((g, i) => {
          // Relative to the gradient's own scale: sums of many terms in another order.
          const scale = reference.grads[i].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          assertClose(g, reference.grads[i], { rtol: 1e-3, atol: 1e-4 * scale + 1e-9 }, `${method} step ${s}: grad ${names[i]}`);
        });
      }
    } finally {
      trainer.dispose();
    }
    assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses.join(', ')}`);
    // The trajectory must move (a test that compares constants proves nothing).
    assert.ok(new Set(losses).size > steps / 2, `losses barely change: ${losses.join(', ')}`);
  });
}

test.run();
