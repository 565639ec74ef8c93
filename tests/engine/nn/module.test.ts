import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Rng, Tensor, globalAvgPool, scope, sum, mul } from '../../../engine/index.ts';
import { BatchNorm1d, BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, Module, ReLU, Sequential, manualSeed } from '../../../engine/nn/index.ts';
import { assertClose, noLeaks, randomArray, tensor } from '../../helpers.ts';

class Block extends Module {
  conv1 = this.registerModule('conv1', new Conv2d(4, 4, 3, { padding: 1, bias: false }));
  bn1 = this.registerModule('bn1', new BatchNorm2d(4));
  conv2 = this.registerModule('conv2', new Conv2d(4, 4, 3, { padding: 1, bias: false }));
  bn2 = this.registerModule('bn2', new BatchNorm2d(4));
  forward(x: Tensor): Tensor {
    return this.bn2.forward(this.conv2.forward(this.bn1.forwardRelu(this.conv1.forward(x))));
  }
}

class Net extends Module {
  conv1 = this.registerModule('conv1', new Conv2d(3, 4, 3, { padding: 1, bias: false }));
  bn1 = this.registerModule('bn1', new BatchNorm2d(4));
  layer1 = this.registerModule('layer1', new Sequential(new Block(), new Block()));
  fc = this.registerModule('fc', new Linear(4, 10));
  forward(x: Tensor): Tensor {
    return this.fc.forward(globalAvgPool(this.layer1.forward(this.bn1.forwardRelu(this.conv1.forward(x)))));
  }
}

const bnKeys = (p: string) => ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'].map((k) => `${p}.${k}`);
const blockKeys = (p: string) => [`${p}.conv1.weight`, ...bnKeys(`${p}.bn1`), `${p}.conv2.weight`, ...bnKeys(`${p}.bn2`)];

test('state dict keys and order follow PyTorch', () => {
  const net = new Net();
  const keys = [...net.stateDict().keys()];
  assert.equal(keys, ['conv1.weight', ...bnKeys('bn1'), ...blockKeys('layer1.0'), ...blockKeys('layer1.1'), 'fc.weight', 'fc.bias']);
  const params = net.namedParameters().map(([k]) => k);
  assert.equal(params, keys.filter((k) => !/running_|num_batches/.test(k)));
  assert.is(net.parameters().length, params.length);
  assert.ok(net.parameters().every((t) => t.requiresGrad));
  assert.equal(net.namedBuffers().map(([k]) => k), keys.filter((k) => /running_|num_batches/.test(k)));
  assert.equal(net.stateDict().get('bn1.num_batches_tracked')!.shape, []);
  assert.is(net.stateDict().get('bn1.num_batches_tracked')!.dtype, 'i32');
  assert.equal(new Linear(3, 2, { bias: false }).namedParameters().map(([k]) => k), ['weight']);
  assert.equal([...new BatchNorm1d(3, { affine: false }).stateDict().keys()], ['running_mean', 'running_var', 'num_batches_tracked']);
  assert.equal([...new BatchNorm1d(3, { trackRunningStats: false }).stateDict().keys()], ['weight', 'bias']);
});

test('train() and eval() reach every descendant', () => {
  const net = new Net();
  net.eval();
  assert.ok(net.namedModules().every(([, m]) => !m.training));
  net.train();
  assert.ok(net.namedModules().every(([, m]) => m.training));
  assert.equal(net.namedModules().map(([k]) => k).slice(0, 5), ['', 'conv1', 'bn1', 'layer1', 'layer1.0']);
});

test('default init: kaiming-uniform(a=sqrt(5)) bounds, BN ones/zeros, seedable', async () => {
  manualSeed(123);
  const a = new Conv2d(3, 8, 3);
  manualSeed(123);
  const b = new Conv2d(3, 8, 3);
  const wa = await a.weight.toArray();
  assert.equal(Array.from(wa), Array.from(await b.weight.toArray()), 'same seed, same weights');
  const bound = 1 / Math.sqrt(3 * 9);
  assert.ok(wa.every((v) => Math.abs(v) <= bound), 'conv weight within 1/sqrt(fan_in)');
  assert.ok(Math.max(...wa.map(Math.abs)) > 0.8 * bound, 'conv weight spans the range');
  const ba = await a.bias!.toArray();
  assert.ok(ba.every((v) => Math.abs(v) <= bound));
  const lin = new Linear(50, 20, { random: new Rng(5).next });
  const lw = Array.from(await lin.weight.toArray());
  assert.ok(lw.every((v) => Math.abs(v) <= 1 / Math.sqrt(50)));
  const m = lw.reduce((s, v) => s + v, 0) / lw.length;
  const v = lw.reduce((s, x) => s + x * x, 0) / lw.length;
  assert.ok(Math.abs(m) < 0.01 && Math.abs(v - 1 / 150) < 0.001, `uniform moments: mean ${m}, var ${v}`);
  const bn = new BatchNorm2d(5);
  assert.equal(Array.from(await bn.weight!.toArray()), [1, 1, 1, 1, 1]);
  assert.equal(Array.from(await bn.bias!.toArray()), [0, 0, 0, 0, 0]);
  assert.equal(Array.from(await bn.runningMean!.toArray()), [0, 0, 0, 0, 0]);
  assert.equal(Array.from(await bn.runningVar!.toArray()), [1, 1, 1, 1, 1]);
  assert.equal(Array.from(await bn.numBatchesTracked!.toArray()), [0]);
});

test('stateDict round trip copies values into the existing tensors', async () => {
  manualSeed(1);
  const src = new Net();
  manualSeed(2);
  const dst = new Net();
  // give the source BN non-default running statistics
  scope(() => { src.forward(tensor(randomArray([2, 3, 5, 5], 3), [2, 3, 5, 5])); });
  const before = dst.stateDict();
  const result = dst.loadStateDict(src.stateDict());
  assert.equal(result, { missingKeys: [], unexpectedKeys: [] });
  const after = dst.stateDict();
  for (const [k, t] of after) {
    assert.ok(before.get(k) === t, `${k}: the same tensor object after loading`);
    assert.equal(Array.from(await t.toArray()), Array.from(await src.stateDict().get(k)!.toArray()), k);
  }
  assert.equal(Array.from(await dst.bn1.numBatchesTracked!.toArray()), [1]);
});

test('loadStateDict errors name missing, unexpected and mis-shaped keys and change nothing', async () => {
  const net = new Sequential(new Linear(4, 3), new ReLU(), new BatchNorm1d(3));
  const w0 = Array.from(await (net.at(0) as Linear).weight.toArray());
  scope(() => {
    const state = new Map<string, Tensor>([
      ['0.weight', Tensor.zeros([3, 5])],
      ['2.weight', Tensor.zeros([3])],
      ['2.bias', Tensor.zeros([3])],
      ['2.running_mean', Tensor.zeros([3])],
      ['2.running_var', Tensor.zeros([3])],
      ['2.num_batches_tracked', Tensor.zeros([], { dtype: 'i32' })],
      ['extra.weight', Tensor.zeros([1])],
    ]);
    let message = '';
    try { net.loadStateDict(state); } catch (e) { message = (e as Error).message; }
    assert.match(message, /Error\(s\) in loading state_dict for Sequential/);
    assert.match(message, /Missing key\(s\) in state_dict: "0.bias"/);
    assert.match(message, /Unexpected key\(s\) in state_dict: "extra.weight"/);
    assert.match(message, /size mismatch for 0.weight: copying a param with shape \[3, 5\] from checkpoint, the shape in current model is \[3, 4\]/);
    // non-strict still refuses shape mismatches
    assert.throws(() => net.loadStateDict(state, false), /size mismatch for 0.weight/);
    state.set('0.weight', Tensor.zeros([3, 4]));
    state.set('2.num_batches_tracked', Tensor.zeros([]));
    assert.throws(() => net.loadStateDict(state, false), /dtype mismatch for 2.num_batches_tracked/);
    state.set('2.num_batches_tracked', Tensor.zeros([], { dtype: 'i32' }));
    const r = net.loadStateDict(state, false);
    assert.equal(r, { missingKeys: ['0.bias'], unexpectedKeys: ['extra.weight'] });
  });
  assert.not.equal(Array.from(await (net.at(0) as Linear).weight.toArray()), w0, 'the non-strict load copied 0.weight');
});

test('BatchNorm2d module: running stats over steps vs float64, eval forward, train/eval switch', async () => {
  await noLeaks(async () => {
    const bn = new BatchNorm2d(3);
    const shape = [2, 3, 3, 5];
    const M = 2 * 15;
    const rm = [0, 0, 0];
    const rv = [1, 1, 1];
    for (let step = 0; step < 3; step++) {
      const x = randomArray(shape, 10 + step, -1, 2 + step);
      for (let c = 0; c < 3; c++) {
        const vals: number[] = [];
        for (let n = 0; n < 2; n++) for (let i = 0; i < 15; i++) vals.push(x[(n * 3 + c) * 15 + i]);
        const mean = vals.reduce((s, v) => s + v, 0) / M;
        const varU = vals.reduce((s, v) => s + (v - mean) ** 2, 0) / (M - 1);
        rm[c] = 0.9 * rm[c] + 0.1 * mean;
        rv[c] = 0.9 * rv[c] + 0.1 * varU;
      }
      scope(() => { bn.forward(tensor(x, shape)); });
    }
    assertClose(await bn.runningMean!.toArray(), rm, { rtol: 1e-5, atol: 1e-6 }, 'running_mean');
    assertClose(await bn.runningVar!.toArray(), rv, { rtol: 1e-5, atol: 1e-6 }, 'running_var');
    assert.equal(Array.from(await bn.numBatchesTracked!.toArray()), [3]);
    bn.eval();
    const x = randomArray(shape, 99);
    const y = scope(() => bn.forward(tensor(x, shape)));
    const expected = x.map((v, i) => { const c = Math.floor(i / 15) % 3; return (v - rm[c]) / Math.sqrt(rv[c] + 1e-5); });
    assertClose(await y.toArray(), expected, { rtol: 1e-4, atol: 1e-5 }, 'eval forward');
    assert.equal(Array.from(await bn.numBatchesTracked!.toArray()), [3], 'eval leaves the counter alone');
    y.dispose();
    for (const [, t] of bn.stateDict()) t.dispose();
  });
});

test('BatchNorm1d on (N, C) and Sequential forward/backward reaches every parameter', async () => {
  const net = new Sequential(new Linear(6, 5), new BatchNorm1d(5), new ReLU(), new Linear(5, 2));
  const x = tensor(randomArray([4, 6], 1), [4, 6]);
  scope(() => {
    const y = net.forward(x);
    assert.equal(y.shape, [4, 2]);
    sum(mul(y, y)).backward();
  });
  for (const [k, p] of net.namedParameters()) {
    assert.ok(p.grad, `${k} has a gradient`);
    assert.equal(p.grad!.shape, p.shape);
    assert.ok((await p.grad!.toArray()).every(Number.isFinite), `${k} grad is finite`);
  }
  assert.throws(() => new BatchNorm1d(5).forward(Tensor.zeros([2, 5, 3, 3])), /expected a 2-D or 3-D input/);
  assert.throws(() => new BatchNorm2d(4).forward(Tensor.zeros([2, 5, 3, 3])), /has 5 channels/);
});

test('Conv2d module forward matches a float64 convolution', async () => {
  manualSeed(7);
  const conv = new Conv2d(3, 5, 3, { stride: 2, padding: 1 });
  const shape = [1, 3, 7, 6];
  const x = randomArray(shape, 4);
  const w = await conv.weight.toArray();
  const b = await conv.bias!.toArray();
  const y = scope(() => conv.forward(tensor(x, shape)));
  assert.equal(y.shape, [1, 5, 4, 3]);
  const ref = new Float64Array(5 * 4 * 3);
  for (let o = 0; o < 5; o++) for (let oh = 0; oh < 4; oh++) for (let ow = 0; ow < 3; ow++) {
    let s = b[o];
    for (let c = 0; c < 3; c++) for (let kh = 0; kh < 3; kh++) for (let kw = 0; kw < 3; kw++) {
      const ih = oh * 2 - 1 + kh;
      const iw = ow * 2 - 1 + kw;
      if (ih < 0 || iw < 0 || ih >= 7 || iw >= 6) continue;
      s += x[(c * 7 + ih) * 6 + iw] * w[((o * 3 + c) * 3 + kh) * 3 + kw];
    }
    ref[(o * 4 + oh) * 3 + ow] = s;
  }
  assertClose(await y.toArray(), ref, { rtol: 1e-4, atol: 1e-5 }, 'conv forward');
  y.dispose();
});



test('a conv/BN/ReLU/pool/linear stack trains end to end without leaks', async () => {
  await noLeaks(async () => {
    manualSeed(3);
    const net = new Sequential(new Conv2d(3, 6, 3, { padding: 1 }), new BatchNorm2d(6), new ReLU(), new MaxPool2d(3, { stride: 2, padding: 1 }), new GlobalAvgPool(), new Linear(6, 4));
    assert.equal([...net.stateDict().keys()], ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '5.weight', '5.bias']);
    const x = tensor(randomArray([2, 3, 7, 5], 8), [2, 3, 7, 5]);
    const loss = scope(() => {
      const l = sum(mul(net.forward(x), net.forward(x)));
      l.backward();
      return l;
    });
    assert.ok(Number.isFinite(await loss.item()));
    for (const p of net.parameters()) assert.ok(p.grad && (await p.grad.toArray()).every(Number.isFinite));
    assert.equal(Array.from(await (net.at(1) as BatchNorm2d).numBatchesTracked!.toArray()), [2]);
    loss.dispose();
    x.dispose();
    for (const p of net.parameters()) p.grad!.dispose();
    for (const [, t] of net.stateDict()) t.dispose();
  });
});
test.run();
