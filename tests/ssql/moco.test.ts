// MoCo v2 and SSQL on MoCo v2: one step of each against an independent PyTorch implementation
// after the reference code (tests/fixtures/make_moco_fixtures.py): both loss terms, every
// gradient, every BN buffer, then the SGD step, the key encoder's EMA and the queue update with
// its wrapping pointer; the network's construction (unit queue columns, the key encoder a copy,
// the reference's defaults); training steps with flat GPU memory; bit-identical resume with the
// queue and key encoder in the checkpoint; evaluation reading the query backbone.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, SGD, Tensor, scope } from '../../engine/index.ts';
import { disposeBackbone, loadBackbone } from '../../ssql/checkpoint/load.ts';
import type { BoundMethod, StepLosses } from '../../ssql/methods/method.ts';
import { MOCO_DEFAULTS, MOCO_V2, SSQL_MOCO, infoNce, normalizeRows } from '../../ssql/methods/moco.ts';
import { MocoNet } from '../../ssql/models/moco.ts';
import type { WeightGrad } from '../../ssql/models/quant.ts';
import type { ResNetConfig } from '../../ssql/models/resnet.ts';
import { TINY_RESNET } from '../../ssql/models/resnet.ts';
import { DEFAULT_CONFIG, Trainer } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import { assertClose, noLeaks, randomArray } from '../helpers.ts';
import { checkResumeIsExact, checkStepsKeepMemoryFlat, sameBytes, syntheticImages } from './steps.ts';

interface StepFixture {
  loss: number;
  fp: number;
  quant?: number;
  grads: Record<string, number[]>;
  buffers: Record<string, number[]>;
  params_after: Record<string, number[]>;
  queue_after: number[];
  queue_ptr_after: number;
}

interface Fixture {
  config: { backbone: ResNetConfig; hidden: number; dim: number; queueSize: number; temperature: number };
  momentum: number;
  lr: number;
  sgd_momentum: number;
  weight_decay: number;
  bits: { wbit: number; abit: number };
  input_shape: number[];
  x1: number[];
  x2: number[];
  state: Record<string, number[]>;
  'ssql-moco': StepFixture & { quant: number };
  'ssql-moco-ste': StepFixture & { quant: number };
  mocov2: StepFixture;
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/moco_fixtures.json', import.meta.url), 'utf8')) as Fixture;
// As tests/ssql/fidelity.test.ts: f32 on both sides summed in different orders; the fixture's
// quantizer inputs lie at least 2e-6 of their range away from a rounding boundary.
const TOL = { rtol: 1e-4, atol: 1e-5 };

function disposeNet(net: MocoNet): void {
  for (const t of net.parameters()) {
    t.grad?.dispose();
    t.grad = null;
  }
  for (const t of net.stateDict().values()) t.dispose();
  net.disposeContexts();
}

/** The method's network holding the fixture's initial state. */
function fixtureNet(method: typeof MOCO_V2 | typeof SSQL_MOCO): BoundMethod & { net: MocoNet } {
  const c = fx.config;
  const bound = method.create({ backbone: c.backbone, projDim: c.hidden, predHidden: 1 }, new Rng(0).next, {
    mocoDim: c.dim, mocoQueue: c.queueSize, mocoTemperature: c.temperature, emaMomentum: fx.momentum,
  });
  const net = bound.net as MocoNet;
  assert.ok(net instanceof MocoNet);
  const own = net.stateDict();
  assert.equal([...own.keys()].sort(), Object.keys(fx.state).sort(), 'state-dict keys');
  const src = scope(() => new Map([...own].map(([k, t]) => [k, Tensor.fromArray(fx.state[k], t.shape, { dtype: t.dtype })])));
  net.loadStateDict(src);
  for (const t of src.values()) t.dispose();
  return bound as BoundMethod & { net: MocoNet };
}

async function oneStep(method: typeof MOCO_V2 | typeof SSQL_MOCO, want: StepFixture, weightGrad: WeightGrad = 'reference'): Promise<void> {
  const bound = fixtureNet(method);
  const net = bound.net;
  assert.is(net.ctx.weightGrad, 'reference', 'the reference gradient is the default');
  net.ctx.weightGrad = weightGrad;
  const x1 = Tensor.fromArray(fx.x1, fx.input_shape);
  const x2 = Tensor.fromArray(fx.x2, fx.input_shape);
  const opt = new SGD(bound.trainable, { lr: fx.lr, momentum: fx.sgd_momentum, weightDecay: fx.weight_decay });
  const misses: string[] = [];
  const check = (actual: ArrayLike<number>, expected: ArrayLike<number>, name: string) => {
    try {
      assertClose(actual, expected, TOL, `${method.name} ${name}`);
    } catch (e) {
      misses.push((e as Error).message);
    }
  };
  const losses: StepLosses = scope(() => {
    const l = bound.losses(x1, x2, method.quantized ? fx.bits : null);
    l.loss.backward();
    return l;
  });
  check([await losses.loss.item()], [want.loss], 'loss');
  check([await losses.fp.item()], [want.fp], 'FP term');
  if (want.quant !== undefined) check([await losses.quant!.item()], [want.quant], 'quantized term');
  else assert.is(losses.quant, null);
  const params = net.encoder.namedParameters().map(([n, p]) => [`encoder.${n}`, p] as const);
  assert.equal(params.map(([n]) => n).sort(), Object.keys(want.grads).sort(), 'gradient names');
  for (const [name, p] of params) {
    if (!p.grad) misses.push(`${name}: no gradient`);
    else check(await p.grad.toArray(), want.grads[name], `grad ${name}`);
  }
  for (const [name, p] of net.keyEncoder.namedParameters()) if (p.grad) misses.push(`key_encoder.${name} got a gradient`);
  const bnBuffers = net.namedBuffers().filter(([n]) => !n.startsWith('queue'));
  assert.equal(bnBuffers.map(([n]) => n).sort(), Object.keys(want.buffers).sort(), 'buffer names');
  for (const [name, b] of bnBuffers) {
    const data = await b.toArray();
    if (b.dtype === 'i32') {
      if (data[0] !== want.buffers[name][0]) misses.push(`${name} = ${data[0]}, expected ${want.buffers[name][0]}`);
    } else check(data, want.buffers[name], name);
  }
  // The step's end, as the trainer runs it: SGD on the query encoder, then EMA and enqueue.
  scope(() => {
    opt.step();
    bound.afterStep({ emaMomentum: fx.momentum });
  });
  const after = net.namedParameters();
  assert.equal(after.map(([n]) => n).sort(), Object.keys(want.params_after).sort(), 'parameter names');
  for (const [name, p] of after) check(await p.toArray(), want.params_after[name], `${name} after the step`);
  check(await net.queue.toArray(), want.queue_after, 'queue after the enqueue');
  const ptr = (await net.queuePtr.toArray())[0];
  if (ptr !== want.queue_ptr_after) misses.push(`queue_ptr = ${ptr}, expected ${want.queue_ptr_after}`);
  if (misses.length) assert.unreachable(`${misses.length} mismatch(es):\n  ${misses.join('\n  ')}`);
  opt.zeroGrad();
  opt.dispose();
  for (const t of new Set([x1, x2, losses.loss, losses.fp, losses.quant])) t?.dispose();
  disposeNet(net);
}

for (const weightGrad of ['reference', 'ste'] as const) {
  test(`fidelity: one SSQL-on-MoCo step with weightGrad '${weightGrad}' matches PyTorch: both InfoNCE terms, gradients, BN, SGD, EMA, queue`, () =>
    noLeaks(() => oneStep(SSQL_MOCO, weightGrad === 'reference' ? fx['ssql-moco'] : fx['ssql-moco-ste'], weightGrad)));
}

test('fidelity: one MoCo v2 step matches PyTorch: InfoNCE, gradients, BN, SGD, EMA, queue', () => noLeaks(() => oneStep(MOCO_V2, fx.mocov2)));

test('the fixture exercises what it should: key encoder unlike the query, the pointer wraps, EMA visible', () => {
  const q = fx.state['encoder.conv1.weight'];
  const k = fx.state['key_encoder.conv1.weight'];
  assert.ok(q.some((v, i) => Math.abs(v - k[i]) > 1e-3), 'different key encoder');
  assert.is(fx.state.queue_ptr[0] + fx.input_shape[0], fx.config.queueSize, 'the enqueue ends at K');
  assert.is(fx.mocov2.queue_ptr_after, 0);
  const before = fx.state['key_encoder.layer1.0.conv1.weight'];
  const after = fx.mocov2.params_after['key_encoder.layer1.0.conv1.weight'];
  assert.ok(before.some((v, i) => Math.abs(v - after[i]) > 1e-3 * Math.max(1, Math.abs(v))), 'the EMA moves the key encoder by more than the tolerance');
});

/** Forward against `cpu` (float64) and the input's gradient against central differences of
 * sum(cpu(x) * R), for a function made of several ops (its intermediates freed by a scope). */
async function compositeGradCheck(name: string, shape: number[], gpu: (x: Tensor) => Tensor, cpu: (x: Float64Array) => ArrayLike<number>): Promise<void> {
  const data = randomArray(shape, 11);
  const want = Float64Array.from(cpu(data));
  const r = randomArray([want.length], 12);
  const { out, grad } = scope(() => {
    const x = Tensor.fromArray(data, shape, { requiresGrad: true });
    const y = gpu(x);
    y.backward(Tensor.fromArray(r, y.shape));
    return { out: y, grad: x.grad! };
  });
  assertClose(await out.toArray(), want, { rtol: 1e-5, atol: 1e-6 }, `${name} forward`);
  const numeric = data.map((v, i) => {
    const at = (e: number) => {
      const d = Float64Array.from(data);
      d[i] = v + e;
      return Float64Array.from(cpu(d)).reduce((s, y, j) => s + y * r[j], 0);
    };
    return (at(1e-4) - at(-1e-4)) / 2e-4;
  });
  assertClose(await grad.toArray(), numeric, { rtol: 1e-3, atol: 1e-4 }, `${name} gradient`);
  out.dispose();
  grad.dispose();
}

test('normalizeRows and infoNce against float64, gradients against finite differences; a zero row stays finite', () => noLeaks(async () => {
  const refNormalize = (x: Float64Array, n: number, d: number) => {
    const out = new Float64Array(n * d);
    for (let r = 0; r < n; r++) {
      const norm = Math.max(Math.sqrt(x.slice(r * d, r * d + d).reduce((s, v) => s + v * v, 0)), 1e-12);
      for (let c = 0; c < d; c++) out[r * d + c] = x[r * d + c] / norm;
    }
    return out;
  };
  await compositeGradCheck('normalizeRows', [5, 7], (x) => normalizeRows(x), (x) => refNormalize(x, 5, 7));
  // InfoNCE with a constant key and queue: -log softmax([q.k, q Queue] / T)[0], mean over rows.
  const [N, D, K, T] = [3, 4, 6, 0.2];
  const k = refNormalize(randomArray([N, D], 8), N, D);
  const queue = randomArray([D, K], 9);
  const refNce = (q: Float64Array) => {
    let total = 0;
    for (let n = 0; n < N; n++) {
      const logits = [0, ...new Array<number>(K).fill(0)];
      for (let d = 0; d < D; d++) {
        logits[0] += q[n * D + d] * k[n * D + d];
        for (let j = 0; j < K; j++) logits[1 + j] += q[n * D + d] * queue[d * K + j];
      }
      const scaled = logits.map((v) => v / T);
      const m = Math.max(...scaled);
      total += Math.log(scaled.reduce((s, v) => s + Math.exp(v - m), 0)) + m - scaled[0];
    }
    return [total / N];
  };
  const kT = Tensor.fromArray(k, [N, D]);
  const queueT = Tensor.fromArray(queue, [D, K]);
  await compositeGradCheck('infoNce', [N, D], (q) => infoNce(q, kT, queueT, T), refNce);
  for (const t of [kT, queueT]) t.dispose();
  const z = scope(() => normalizeRows(Tensor.zeros([1, 3])));
  assert.equal([...(await z.toArray())], [0, 0, 0], 'a zero row stays zero (no NaN)');
  z.dispose();
}));

test('MocoNet: unit queue columns, the key encoder a frozen copy, the reference defaults; bad settings refused', () => noLeaks(async () => {
  assert.equal({ ...MOCO_V2.settings }, { emaMomentum: 0.999, mocoDim: 256, mocoQueue: 4096, mocoTemperature: 0.2 });
  assert.equal({ ...SSQL_MOCO.settings }, { ...MOCO_DEFAULTS });
  const bound = SSQL_MOCO.create({ backbone: TINY_RESNET, projDim: 12, predHidden: 1 }, new Rng(3).next, { mocoDim: 6, mocoQueue: 10 });
  const net = bound.net as MocoNet;
  assert.equal(net.queue.shape, [6, 10]);
  assert.is(net.predictor, null);
  assert.equal(net.config, { backbone: TINY_RESNET, hidden: 12, dim: 6, queueSize: 10, temperature: 0.2 });
  const queue = await net.queue.toArray();
  for (let k = 0; k < 10; k++) {
    let s = 0;
    for (let d = 0; d < 6; d++) s += queue[d * 10 + k] ** 2;
    assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-6, `column ${k} has length ${Math.sqrt(s)}`);
  }
  assert.equal([...(await net.queuePtr.toArray())], [0]);
  const keys = new Map(net.keyEncoder.stateDict());
  for (const [name, t] of net.encoder.stateDict()) assert.equal([...(await keys.get(name)!.toArray())], [...(await t.toArray())], `key_encoder.${name}`);
  assert.ok(net.keyEncoder.parameters().every((p) => !p.requiresGrad), 'the key encoder is frozen');
  assert.is(bound.trainable.length, net.encoder.parameters().length);
  assert.equal(net.namedParameters().filter(([n]) => n.startsWith('encoder.fc.')).map(([n, p]) => `${n} [${p.shape.join(', ')}]`),
    ['encoder.fc.0.weight [12, 32]', 'encoder.fc.0.bias [12]', 'encoder.fc.2.weight [6, 12]', 'encoder.fc.2.bias [6]']);
  for (const t of net.stateDict().values()) t.dispose();
  net.disposeContexts();
  const cfg = { backbone: TINY_RESNET, projDim: 8, predHidden: 1 };
  assert.throws(() => MOCO_V2.create(cfg, new Rng(0).next, { mocoQueue: 0 }), /the queue size must be a positive integer, got 0/);
  assert.throws(() => MOCO_V2.create(cfg, new Rng(0).next, { mocoTemperature: -1 }), /the temperature must be positive, got -1/);
}));

const data = syntheticImages();
const cfg = (method: TrainConfig['method']): TrainConfig => ({
  ...DEFAULT_CONFIG, method, model: 'tiny', projDim: 8, predHidden: 4, batchSize: 4, epochs: 2, seed: 7, subset: 0,
  mocoDim: 6, mocoQueue: 12,
});

for (const method of ['mocov2', 'ssql-moco'] as const) {
  test(`${method}: training steps are finite, move the key encoder by EMA, fill the queue, keep GPU memory flat`, () => noLeaks(async () => {
    const trainer = new Trainer(cfg(method), data);
    assert.ok(trainer.net instanceof MocoNet);
    const net = trainer.net as MocoNet;
    const initialQueue = await net.queue.toArray();
    const { before, after } = await checkStepsKeepMemoryFlat(trainer, 2, (r) => {
      if (method === 'ssql-moco') assert.ok(r.bits && r.quant, 'SSQL on MoCo draws bits and has a quantized term');
      else assert.ok(!r.bits && !r.quant, 'MoCo v2 has no quantized term');
    });
    const changed = (k: string) => !sameBytes(before.get(k)!, after.get(k)!);
    assert.ok(changed('encoder.conv1.weight') && changed('key_encoder.conv1.weight'), 'query and key weights both move');
    // 6 steps of 4 keys in a queue of 12: the pointer went round twice; every column was replaced.
    assert.equal([...(await net.queuePtr.toArray())], [0]);
    const q = await net.queue.toArray();
    for (let k = 0; k < 12; k++) {
      let s = 0;
      for (let d = 0; d < 6; d++) s += q[d * 12 + k] ** 2;
      assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-5, `queued key ${k} is a unit vector`);
      assert.ok(q[k] !== initialQueue[k], `column ${k} was replaced`);
    }
    trainer.dispose();
  }));
}

test('ssql-moco resume: 4 steps straight equal 2, checkpoint, restore, 2 (bit-identical: key encoder, queue, pointer)', () => noLeaks(async () => {
  const config = cfg('ssql-moco'); // 8 steps an epoch
  const { tensors, metadata } = await checkResumeIsExact(config, data);
  assert.equal(tensors.queue.shape, [6, 12]);
  assert.equal({ dtype: tensors.queue_ptr.dtype, shape: tensors.queue_ptr.shape }, { dtype: 'I64', shape: [1] }, 'the pointer is int64 like PyTorch\'s');
  assert.is(new BigInt64Array(new Uint8Array(tensors.queue_ptr.data).buffer)[0], 8n);
  assert.ok('key_encoder.fc.2.bias' in tensors && 'key_encoder.bn1.running_var' in tensors, 'the checkpoint holds the key encoder');
  assert.not.ok(Object.keys(tensors).some((k) => k.startsWith('optimizer.key_encoder.')), 'no optimizer state for the key encoder');
  // Evaluation reads the query encoder's backbone.
  const encoder = loadBackbone({ tensors, metadata, source: 'checkpoint' });
  const w = await encoder.conv1.weight.toArray();
  const saved = new Float32Array(new Uint8Array(tensors['encoder.conv1.weight'].data).buffer);
  assert.ok(w.length === saved.length && w.every((v, i) => Object.is(v, saved[i])), 'the query backbone loads for evaluation');
  disposeBackbone(encoder);
  const other = new Trainer({ ...config, mocoQueue: 16 }, data);
  assert.throws(() => other.restore(tensors, metadata), /mocoQueue/);
  other.dispose();
}));

test.run();
