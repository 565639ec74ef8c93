// BYOL and SSQL on BYOL (docs/method.md#byol-variant): the target encoder starts as a copy of the online one
// and is frozen; the EMA update matches a float64 reference; the BYOL loss matches a float64
// recomputation from read-back predictions and targets; a few BYOL / SSQL-BYOL training steps
// are finite, train only the online network, keep GPU memory flat, and resume bit-identically.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, Tensor, noGrad, scope, setReferenceKernels } from '../../engine/index.ts';
import { emaUpdate } from '../../engine/ops/ema.ts';
import { byolLosses, ssqlByolLosses } from '../../ssql/methods/byol.ts';
import { ByolNet } from '../../ssql/models/byol.ts';
import { SimSiamNet, TINY_RESNET } from '../../ssql/models/resnet.ts';
import { DEFAULT_CONFIG, Trainer, loadInto } from '../../ssql/train.ts';
import type { TrainConfig } from '../../ssql/train.ts';
import { checkResumeIsExact, checkStepsKeepMemoryFlat, sameBytes, syntheticImages } from './steps.ts';
import { assertClose, noLeaks, randomArray } from '../helpers.ts';

const CONFIG = { backbone: TINY_RESNET, projDim: 8, predHidden: 4 };

function disposeNet(net: ByolNet): void {
  for (const t of net.parameters()) {
    t.grad?.dispose();
    t.grad = null;
  }
  for (const t of net.stateDict().values()) t.dispose();
  net.disposeContexts();
}

async function read(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.toArray());
}

test('ByolNet: target.* mirrors encoder.*, starts as a bit-exact copy, and is frozen', () => noLeaks(async () => {
  const net = new ByolNet(CONFIG, new Rng(3).next);
  const keys = [...net.stateDict().keys()];
  const online = keys.filter((k) => k.startsWith('encoder.'));
  const target = keys.filter((k) => k.startsWith('target.'));
  assert.ok(keys.some((k) => k.startsWith('predictor.')), 'predictor.* keys');
  assert.ok(keys.every((k) => /^(encoder|predictor|target)\./.test(k)), 'only encoder/predictor/target keys');
  assert.equal(target.map((k) => k.slice('target.'.length)), online.map((k) => k.slice('encoder.'.length)), 'target keys mirror the encoder');
  assert.ok(target.includes('target.fc.6.weight') && target.includes('target.bn1.running_mean'), 'projector and BN buffers under target.');
  const state = net.stateDict();
  for (const k of target) {
    const a = await state.get(k)!.toArray();
    const b = await state.get(`encoder.${k.slice('target.'.length)}`)!.toArray();
    assert.ok(a.length === b.length && a.every((v, i) => Object.is(v, b[i])), `${k} is not a copy of the online encoder`);
  }
  for (const [name, p] of net.target.namedParameters()) assert.not.ok(p.requiresGrad, `target.${name} requires grad`);
  const trainable = new Set(net.trainableParameters());
  assert.is(trainable.size, net.encoder.parameters().length + net.predictor.parameters().length);
  for (const p of net.target.parameters()) assert.not.ok(trainable.has(p), 'a target parameter is trainable');
  disposeNet(net);
}));

test('emaUpdate: t = m t + (1 - m) s in place, against float64, sizes not a multiple of 4', () => noLeaks(async () => {
  for (const [n, m] of [[1, 0.99], [5, 0.99], [1027, 0.9], [6, 0]] as const) {
    const t0 = randomArray([n], 10 + n);
    const s0 = randomArray([n], 20 + n, -3, 3);
    const t = Tensor.fromArray(t0);
    const s = Tensor.fromArray(s0);
    emaUpdate(t, s, m);
    const want = t0.map((v, i) => m * v + (1 - m) * s0[i]);
    assertClose(await t.toArray(), want, { rtol: 1e-6, atol: 1e-7 }, `ema n=${n} m=${m}`);
    assertClose(await s.toArray(), s0, { rtol: 0, atol: 0 }, 'the source is untouched');
    t.dispose();
    s.dispose();
  }
  const a = Tensor.fromArray([1, 2]);
  const b = Tensor.fromArray([1, 2, 3]);
  const c = Tensor.fromArray([3, 4]);
  const alias = a.detach();
  assert.throws(() => emaUpdate(a, b, 0.9), /sizes differ/);
  assert.throws(() => emaUpdate(a, alias, 0.9), /shares storage/);
  assert.throws(() => emaUpdate(a, c, 1.5), /momentum/);
  for (const t of [a, b, c, alias]) t.dispose();
}));

// Lists of pairs: four a dispatch (engine/ops/ema.ts), the rest one by one; odd sizes, sizes
// spanning several workgroups (8192 floats each) and an empty tensor; fast and reference paths.
for (const reference of [false, true]) {
  test(`emaUpdate over lists of tensors of odd sizes, against float64${reference ? ' (reference path: one a dispatch)' : ''}`, () => noLeaks(async () => {
    const sizes = [1, 3, 0, 21, 1073, 20001, 4, 7, 8193, 2, 5];
    setReferenceKernels(reference);
    try {
      const t0 = sizes.map((n, i) => randomArray([n], 40 + i));
      const s0 = sizes.map((n, i) => randomArray([n], 60 + i, -3, 3));
      const ts = t0.map((v) => Tensor.fromArray(v));
      const ss = s0.map((v) => Tensor.fromArray(v));
      emaUpdate(ts, ss, 0.99);
      emaUpdate(ts, ss, 0.9);
      for (const [i, t] of ts.entries()) {
        const want = t0[i].map((v, j) => 0.9 * (0.99 * v + (1 - 0.99) * s0[i][j]) + (1 - 0.9) * s0[i][j]);
        assertClose(await t.toArray(), want, { rtol: 1e-6, atol: 1e-7 }, `ema list, tensor ${i} of ${sizes[i]}`);
      }
      assert.throws(() => emaUpdate(ts.slice(0, 2), ss.slice(0, 3), 0.9), /2 targets but 3 sources/);
      assert.throws(() => emaUpdate([ts[0], ts[0]], [ss[0], ss[0]], 0.9), /given twice/);
      for (const t of [...ts, ...ss]) t.dispose();
    } finally {
      setReferenceKernels(false);
    }
  }));
}

test('ByolNet.updateTarget(0.99): every target parameter against float64, BN buffers untouched', () => noLeaks(async () => {
  const net = new ByolNet(CONFIG, new Rng(4).next);
  // Move the online parameters away from the target (as an optimizer step would).
  let seed = 100;
  scope(() => {
    const moved = new Map<string, Tensor>();
    for (const [name, p] of net.encoder.namedParameters()) moved.set(name, Tensor.fromArray(randomArray(p.shape, seed++), p.shape));
    net.encoder.loadStateDict(moved, false);
  });
  const before = new Map<string, Float64Array>();
  for (const [k, t] of net.stateDict()) if (t.dtype === 'f32') before.set(k, await read(t));
  net.updateTarget(0.99);
  for (const [name, p] of net.target.namedParameters()) {
    const t0 = before.get(`target.${name}`)!;
    const o = before.get(`encoder.${name}`)!;
    assertClose(await p.toArray(), t0.map((v, i) => 0.99 * v + 0.01 * o[i]), { rtol: 1e-6, atol: 1e-7 }, `target.${name}`);
  }
  for (const [name, b] of net.target.namedBuffers()) {
    if (b.dtype !== 'f32') continue;
    assertClose(await b.toArray(), before.get(`target.${name}`)!, { rtol: 0, atol: 0 }, `target.${name} (a buffer, not averaged)`);
  }
  for (const [name, p] of net.encoder.namedParameters()) {
    assertClose(await p.toArray(), before.get(`encoder.${name}`)!, { rtol: 0, atol: 0 }, `encoder.${name} (the source)`);
  }
  disposeNet(net);
}));

/** The loss form in float64: (D(p1, z2) + D(p2, z1)) / 2, D = -mean_rows cos (eps 1e-8). */
function symmetricRef(p1: Float64Array, p2: Float64Array, z1: Float64Array, z2: Float64Array, rows: number): number {
  const D = (p: Float64Array, z: Float64Array) => {
    const d = p.length / rows;
    let s = 0;
    for (let r = 0; r < rows; r++) {
      let pz = 0, pp = 0, zz = 0;
      for (let j = 0; j < d; j++) {
        const a = p[r * d + j], b = z[r * d + j];
        pz += a * b; pp += a * a; zz += b * b;
      }
      s += pz / (Math.max(Math.sqrt(pp), 1e-8) * Math.max(Math.sqrt(zz), 1e-8));
    }
    return -s / rows;
  };
  return (D(p1, z2) + D(p2, z1)) / 2;
}

test('byolLosses: value against float64 from read-back p and target z; gradients reach the online network only; SSQL-BYOL FP term equals it', () => noLeaks(async () => {
  const net = new ByolNet(CONFIG, new Rng(5).next);
  // Make the target differ from the online encoder, so cross-view targets really are g's.
  scope(() => {
    const moved = new Map<string, Tensor>();
    let seed = 300;
    for (const [name, p] of net.encoder.namedParameters()) moved.set(name, Tensor.fromArray(randomArray(p.shape, seed++), p.shape));
    net.target.loadStateDict(moved, false);
  });
  const shape = [4, 1, 8, 8];
  const x1 = Tensor.fromArray(randomArray(shape, 1), shape);
  const x2 = Tensor.fromArray(randomArray(shape, 2), shape);
  // Batch statistics in train mode: outputs do not depend on the running statistics, so
  // separate passes see what byolLosses sees.
  const [p1, p2, z1t, z2t] = scope(() => noGrad(() => [
    net.predictor.forward(net.encoder.forward(x1)), net.predictor.forward(net.encoder.forward(x2)),
    net.targetForward(x1), net.targetForward(x2),
  ]));
  const want = symmetricRef(await read(p1), await read(p2), await read(z1t), await read(z2t), shape[0]);
  for (const t of [p1, p2, z1t, z2t]) t.dispose();

  const targetBefore = await Promise.all(net.target.parameters().map((p) => read(p)));
  const l = scope(() => {
    const r = byolLosses(net, x1, x2);
    r.loss.backward();
    return r;
  });
  assert.is(l.quant, null);
  assertClose([await l.loss.item()], [want], { rtol: 1e-5, atol: 1e-6 }, 'BYOL loss');
  for (const [name, p] of net.target.namedParameters()) assert.is(p.grad, null, `target.${name} received a gradient`);
  for (const [name, p] of [...net.encoder.namedParameters(), ...net.predictor.namedParameters()]) {
    // The projector's last bias is frozen (docs/method.md#frozen-projector-bias).
    if (p.requiresGrad) assert.ok(p.grad, `${name} got no gradient`);
    else assert.is(p.grad, null, `${name} is frozen but got a gradient`);
  }
  const targetAfter = await Promise.all(net.target.parameters().map((p) => read(p)));
  targetAfter.forEach((a, i) => assertClose(a, targetBefore[i], { rtol: 0, atol: 0 }, 'the loss left the target parameters alone'));
  for (const p of net.parameters()) {
    p.grad?.dispose();
    p.grad = null;
  }

  const q = scope(() => {
    const r = ssqlByolLosses(net, x1, x2, { wbit: 2, abit: 4 });
    r.loss.backward();
    return r;
  });
  const fp = await q.fp.item();
  const quant = await q.quant!.item();
  assertClose([fp], [want], { rtol: 1e-5, atol: 1e-6 }, 'SSQL-BYOL FP term (the calibration pass is full precision)');
  assert.ok(Math.abs(quant - fp) > 1e-4, `the 2-bit quantized term ${quant} should differ from the FP term ${fp}`);
  assertClose([await q.loss.item()], [(fp + quant) / 2], { rtol: 1e-6, atol: 1e-7 }, 'L = (FP + quantized) / 2');
  for (const [name, p] of net.target.namedParameters()) assert.is(p.grad, null, `target.${name} received a gradient`);
  assert.is(net.ctx.mode, 'off');
  assert.is(net.targetCtx.mode, 'off');
  for (const t of [x1, x2, l.loss, q.loss, q.fp, q.quant!]) t.dispose();
  disposeNet(net);
}));

const data = syntheticImages();
const cfg = (method: TrainConfig['method']): TrainConfig => ({
  ...DEFAULT_CONFIG, method, model: 'tiny', projDim: 8, predHidden: 4, batchSize: 4, epochs: 2, seed: 7, subset: 0,
});

for (const method of ['byol', 'ssql-byol'] as const) {
  test(`${method}: training steps are finite, move the target by EMA, and keep GPU memory flat`, () => noLeaks(async () => {
    const trainer = new Trainer(cfg(method), data);
    assert.ok(trainer.net instanceof ByolNet);
    const { before, after } = await checkStepsKeepMemoryFlat(trainer, 3, (r) => {
      if (method === 'ssql-byol') assert.ok(r.bits && r.quant, 'SSQL-BYOL draws bits and has a quantized term');
      else assert.ok(!r.bits && !r.quant, 'BYOL has no quantized term');
    });
    const changed = (k: string) => !sameBytes(before.get(k)!, after.get(k)!);
    assert.ok(changed('encoder.conv1.weight') && changed('target.conv1.weight'), 'online and target weights both move');
    assert.not.ok(sameBytes(after.get('encoder.conv1.weight')!, after.get('target.conv1.weight')!), 'the target lags the online encoder');
    trainer.dispose();
  }));
}

test('ssql-byol resume: 4 steps straight equal 2, checkpoint, restore, 2 (bit-identical, target included)', () => noLeaks(async () => {
  const config = cfg('ssql-byol'); // 8 steps an epoch
  const { tensors, metadata } = await checkResumeIsExact(config, data);
  assert.ok('target.fc.6.weight' in tensors && 'target.bn1.running_var' in tensors, 'the checkpoint holds the target');
  assert.not.ok(Object.keys(tensors).some((k) => k.startsWith('optimizer.target.')), 'no optimizer state for the target');
  // `ssql eval` rebuilds a SimSiamNet from a checkpoint: a BYOL one loads (target.* is ignored).
  const evalNet = new SimSiamNet(CONFIG, new Rng(0).next);
  loadInto(evalNet, tensors, 'checkpoint');
  const w = await evalNet.encoder.conv1.weight.toArray();
  const saved = new Float32Array(new Uint8Array(tensors['encoder.conv1.weight'].data).buffer);
  assert.ok(w.length === saved.length && w.every((v, i) => Object.is(v, saved[i])), 'the online encoder loads for evaluation');
  for (const t of evalNet.stateDict().values()) t.dispose();
  evalNet.ctx.dispose();
  const other = new Trainer({ ...config, emaMomentum: 0.9 }, data);
  assert.throws(() => other.restore(tensors, metadata), /emaMomentum/);
  other.dispose();
}));

test.run();
