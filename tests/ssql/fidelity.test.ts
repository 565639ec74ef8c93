// Fidelity to the method (docs/method.md): one training step of the Trainer, as `pretrain` runs
// it, on the tiny ResNet with fixed weights, fixed input views and a fixed bit pair, matches an
// independent PyTorch implementation (tests/fixtures/make_ssql_fixtures.py writes
// ssql_fixtures.json): both loss terms, every trained parameter's gradient, every BN layer's
// running statistics and num_batches_tracked after the step (four updates for SSQL: FP x1, FP
// x2, Q x1, Q x2), for SSQL with each weight-gradient option and for SimSiam. The SGD update that
// follows is checked against the fixture's gradients (the update's own arithmetic has a golden
// test): every trained parameter moves by lr (g + wd p), the projector's frozen last bias not at
// all. A checkpoint from before the option existed resumes with plain STE, and says so; one made
// with the other option is refused.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, scope } from '../../engine/index.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';
import type { WeightGrad } from '../../ssql/models/quant.ts';
import type { SimSiamConfig } from '../../ssql/models/resnet.ts';
import { readConfig, resumeDifferences } from '../../ssql/checkpoint/state.ts';
import { DEFAULT_CONFIG, Trainer, backboneConfig } from '../../ssql/train.ts';
import type { MethodName, StepReport } from '../../ssql/train.ts';
import { assertClose, noLeaks } from '../helpers.ts';

interface StepFixture {
  loss: number;
  /** SSQL's FP term (SimSiam's loss is its only term). */
  fp?: number;
  quant?: number;
  buffers: Record<string, number[]>;
}

interface Fixture {
  config: SimSiamConfig;
  bits: { wbit: number; abit: number };
  input_shape: number[];
  x1: number[];
  x2: number[];
  state: Record<string, number[]>;
  ssql: StepFixture & { fp: number; quant: number; grads_reference: Record<string, number[]>; grads_ste: Record<string, number[]> };
  simsiam: StepFixture & { grads: Record<string, number[]> };
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/ssql_fixtures.json', import.meta.url), 'utf8')) as Fixture;
const FROZEN = 'encoder.fc.6.bias';

// PyTorch on the CPU and the engine on the GPU both compute in f32 but sum in different
// orders; 1e-4 relative is the bar. The absolute floor is for entries near zero; the
// gradients here reach ~2, and at rtol 1e-4 the worst entry needs an atol of ~1e-6, so 1e-5
// leaves headroom without hiding a wrong mask, rounding or weight-scale term (those move
// gradients by 1e-3 or more). The fixture script picks a seed whose quantizer inputs all lie at
// least 2e-6 of the range away from a rounding boundary.
const TOL = { rtol: 1e-4, atol: 1e-5 };

/** The fixture's batch size of placeholder images: the fixed views replace the augmentation. */
function placeholderImages(): LabeledImages {
  const [n, c, h, w] = fx.input_shape;
  return { images: new Uint8Array(n * c * h * w), labels: new Int32Array(n), count: n, channels: c, height: h, width: w };
}

/** A Trainer of the tiny model holding the fixture's state, whose step sees the fixture's views
 * (its first `views` call of a step returns x1, the second x2) and draws the fixture's bits
 * (both bit ranges a single value). */
function fixtureTrainer(method: MethodName, weightGrad: WeightGrad): Trainer {
  const [n, c] = fx.input_shape;
  assert.equal(backboneConfig('tiny', c), fx.config.backbone, 'the fixture is the tiny model');
  const trainer = new Trainer({
    ...DEFAULT_CONFIG, method, model: 'tiny', projDim: fx.config.projDim, predHidden: fx.config.predHidden, batchSize: n, epochs: 1, weightGrad,
    wbits: [fx.bits.wbit, fx.bits.wbit], abits: [fx.bits.abit, fx.bits.abit],
  }, placeholderImages());
  const own = trainer.net.stateDict();
  assert.equal([...own.keys()].sort(), Object.keys(fx.state).sort(), 'state-dict keys');
  const src = scope(() => new Map([...own].map(([k, t]) => [k, Tensor.fromArray(fx.state[k], t.shape, { dtype: t.dtype })])));
  trainer.net.loadStateDict(src);
  for (const t of src.values()) t.dispose();
  useFixtureViews(trainer);
  return trainer;
}

function useFixtureViews(trainer: Trainer): void {
  let calls = 0;
  trainer.aug.views = () => Tensor.fromArray(calls++ % 2 === 0 ? fx.x1 : fx.x2, fx.input_shape);
}

/** Runs one step and compares everything with the fixture, then fails once naming every
 * mismatch. */
async function checkStep(trainer: Trainer, want: StepFixture, grads: Record<string, number[]>, what: string): Promise<void> {
  const misses: string[] = [];
  const check = (actual: ArrayLike<number>, expected: ArrayLike<number>, name: string, tol = TOL) => {
    try {
      assertClose(actual, expected, tol, `${what} ${name}`);
    } catch (e) {
      misses.push((e as Error).message);
    }
  };
  const { lr, weightDecay } = trainer.config;
  const r: StepReport = trainer.step();
  check([await r.loss.item()], [want.loss], 'loss');
  check([await r.fp.item()], [want.fp ?? want.loss], 'FP term');
  if (want.quant !== undefined) check([await r.quant!.item()], [want.quant], 'quantized term');
  else assert.is(r.quant, null);
  for (const t of [r.loss, r.fp, r.quant]) t?.dispose();

  const params = trainer.net.namedParameters();
  assert.equal(params.filter(([, p]) => p.requiresGrad).map(([n]) => n).sort(), Object.keys(grads).sort(), `${what}: trained parameters`);
  assert.ok(!trainer.opt.params.includes(params.find(([n]) => n === FROZEN)![1]), `${what}: ${FROZEN} is not in the optimizer`);
  for (const [name, p] of params) {
    const before = fx.state[name];
    const after = await p.toArray();
    if (name === FROZEN) {
      assert.is(p.requiresGrad, false, `${FROZEN} is frozen`);
      assert.is(p.grad, null, `${FROZEN} gets no gradient`);
      assert.equal(Array.from(after), before.map(Math.fround), `${FROZEN} is neither updated nor decayed`);
      continue;
    }
    if (!p.grad) {
      misses.push(`${what} ${name}: no gradient`);
      continue;
    }
    check(await p.grad.toArray(), grads[name], `grad ${name}`);
    // First step, empty momentum: p - lr (g + wd p).
    check(after, before.map((v, i) => v - lr * (grads[name][i] + weightDecay * v)), `${name} after the update`);
  }
  const buffers = trainer.net.namedBuffers();
  assert.equal(buffers.map(([n]) => n).sort(), Object.keys(want.buffers).sort(), `${what}: buffer names`);
  for (const [name, b] of buffers) {
    const data = await b.toArray();
    if (b.dtype === 'i32') {
      if (data[0] !== want.buffers[name][0]) misses.push(`${what} ${name} = ${data[0]}, expected ${want.buffers[name][0]}`);
    } else check(data, want.buffers[name], name);
  }
  if (misses.length) assert.unreachable(`${misses.length} mismatch(es):\n  ${misses.join('\n  ')}`);
}

for (const weightGrad of ['reference', 'ste'] as const) {
  test(`fidelity: a Trainer step of SSQL with weightGrad '${weightGrad}' matches PyTorch: loss terms, every gradient, BN running stats, the update`, () => noLeaks(async () => {
    const trainer = fixtureTrainer('ssql', weightGrad);
    assert.is(trainer.net.ctx.weightGrad, weightGrad, 'the trainer hands the option to the quantizers');
    await checkStep(trainer, fx.ssql, weightGrad === 'reference' ? fx.ssql.grads_reference : fx.ssql.grads_ste, `SSQL w${fx.bits.wbit}a${fx.bits.abit} ${weightGrad}`);
    trainer.dispose();
  }));
}

test('fidelity: the two weight gradients differ where the reference adds the weight-scale term', () => {
  let differing = 0;
  for (const [name, g] of Object.entries(fx.ssql.grads_reference)) {
    const s = fx.ssql.grads_ste[name];
    if (g.some((v, i) => Math.abs(v - s[i]) > 1e-3 * (1 + Math.abs(s[i])))) differing++;
  }
  // Every quantized conv and linear of the encoder; a difference the tolerance could not see
  // would make the two tests above unable to tell the options apart.
  assert.ok(differing >= 8, `only ${differing} parameters differ between the two gradients`);
});

test('fidelity: a Trainer step of SimSiam matches PyTorch: loss, every gradient, BN running stats, the update', () => noLeaks(async () => {
  const trainer = fixtureTrainer('simsiam', 'reference');
  await checkStep(trainer, fx.simsiam, fx.simsiam.grads, 'SimSiam');
  trainer.dispose();
}));

test('resuming a checkpoint made before weightGrad existed keeps plain STE and says so; a mismatch is an error', () => noLeaks(async () => {
  const maker = fixtureTrainer('ssql', 'reference');
  const { tensors, metadata } = await maker.checkpoint();
  maker.dispose();
  const config = JSON.parse(metadata.config) as Record<string, unknown>;
  delete config.weightGrad;
  const old = { ...metadata, config: JSON.stringify(config) };

  const resumed = fixtureTrainer('ssql', 'reference');
  const { refusals, notes } = resumeDifferences(readConfig(old, 'old.safetensors'), resumed.config);
  assert.equal(refusals, []);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /^--weight-grad ste: the checkpoint predates the option, so it was trained with plain STE, and the resumed run keeps that/);
  resumed.restore(tensors, old);
  assert.is(resumed.net.ctx.weightGrad, 'ste');
  assert.is(resumed.config.weightGrad, 'ste', 'the next checkpoint records it');
  useFixtureViews(resumed);
  await checkStep(resumed, fx.ssql, fx.ssql.grads_ste, 'SSQL resumed from an old checkpoint');
  resumed.dispose();

  const other = fixtureTrainer('ssql', 'ste');
  assert.throws(() => other.restore(tensors, metadata, 'new.safetensors'), /new\.safetensors: cannot resume: --weight-grad: the checkpoint was made with --weight-grad reference, this run has ste/);
  other.dispose();
}));

test.run();
