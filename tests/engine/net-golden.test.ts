// Golden PyTorch fixture for a whole small network (tests/fixtures/make_net_fixtures.py writes
// net_fixtures.json): a 7x7 stride-2 conv stem with bias, BatchNorm2d in training mode with the
// fused ReLU, max pool 3x3 s2 p1, a 3x3 stride-2 conv, BatchNorm2d + the ReLU module, a 1x1 conv,
// avg pool 2, global average pool, Linear and cross-entropy, built from engine/nn modules and
// loaded with loadStateDict under PyTorch's key names. One training step: the output, the loss,
// every parameter gradient, the input gradient and the updated BN running statistics.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, crossEntropy, scope } from '../../engine/index.ts';
import { AvgPool2d, BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, Module, ReLU } from '../../engine/nn/index.ts';
import { assertClose, noLeaks } from '../helpers.ts';

interface Fixture {
  x_shape: number[];
  x_int: number[];
  x_scale: number;
  labels: number[];
  state: Record<string, { shape: number[]; dtype: 'f32' | 'i32'; data: number[] }>;
  output: number[];
  output_shape: number[];
  loss: number;
  grad: Record<string, number[]>;
  x_grad: number[];
  state_after: Record<string, number[]>;
}

const fx = JSON.parse(readFileSync(new URL('../fixtures/net_fixtures.json', import.meta.url), 'utf8')) as Fixture;

class Net extends Module {
  conv1 = this.registerModule('conv1', new Conv2d(3, 5, 7, { stride: 2, padding: 3 }));
  bn1 = this.registerModule('bn1', new BatchNorm2d(5));
  pool = this.registerModule('pool', new MaxPool2d(3, { stride: 2, padding: 1 }));
  conv2 = this.registerModule('conv2', new Conv2d(5, 7, 3, { stride: 2, padding: 1 }));
  bn2 = this.registerModule('bn2', new BatchNorm2d(7));
  relu = new ReLU();
  conv3 = this.registerModule('conv3', new Conv2d(7, 6, 1));
  avg = this.registerModule('avg', new AvgPool2d(2));
  gap = new GlobalAvgPool();
  fc = this.registerModule('fc', new Linear(6, 4));

  forward(x: Tensor): Tensor {
    let h = this.pool.forward(this.bn1.forwardRelu(this.conv1.forward(x))); // fused BN + ReLU
    h = this.relu.forward(this.bn2.forward(this.conv2.forward(h))); // BN, then the ReLU module
    h = this.relu.forward(this.conv3.forward(h));
    return this.fc.forward(this.gap.forward(this.avg.forward(h)));
  }
}

/**
 * rtol 1e-4 everywhere, as the issue asks. The reference is float64 (from the same float32
 * weights and input), so the misses are our float32 rounding. atol covers elements near zero,
 * where a relative bound means nothing: 1e-5 of the tensor's largest reference value (a float32
 * PyTorch run needs at most 2e-7 of it on this network, see the script's printout), and never
 * below 1e-7 absolute. The floor is for conv1.bias and conv2.bias: a bias followed by
 * training-mode BN has an analytically zero gradient (BN subtracts the batch mean), so the
 * reference is ~1e-17 and any float32 result is pure rounding noise (float32 PyTorch gives 4e-8;
 * the other gradients are 1e-3..2e-1).
 */
function tolFor(expected: number[]): { rtol: number; atol: number } {
  const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  return { rtol: 1e-4, atol: Math.max(1e-5 * scale, 1e-7) };
}

test('golden: conv7x7s2+BN+ReLU+maxpool+conv s2+BN+ReLU+1x1 conv+pools+linear+CE, one training step, matches PyTorch to 1e-4', async () => {
  await noLeaks(async () => {
    const net = new Net();
    // State dict in PyTorch's key names (the fixture's keys are exactly net.state_dict()'s).
    const state = new Map<string, Tensor>();
    for (const [k, v] of Object.entries(fx.state)) state.set(k, Tensor.fromArray(v.data, v.shape, { dtype: v.dtype }));
    assert.equal([...net.stateDict().keys()], Object.keys(fx.state), 'state dict keys and order');
    const res = net.loadStateDict(state);
    assert.equal(res, { missingKeys: [], unexpectedKeys: [] });
    for (const t of state.values()) t.dispose();
    net.train();

    const x = Tensor.fromArray(fx.x_int.map((k) => k * fx.x_scale), fx.x_shape, { requiresGrad: true });
    const labels = Tensor.fromArray(fx.labels, [fx.labels.length], { dtype: 'i32' });
    const [out, loss] = scope(() => {
      const o = net.forward(x);
      const l = crossEntropy(o, labels);
      l.backward();
      return [o, l];
    });
    assert.equal(out.shape, fx.output_shape);
    assertClose(await out.toArray(), fx.output, tolFor(fx.output), 'output');
    assertClose([await loss.item()], [fx.loss], { rtol: 1e-4, atol: 0 }, 'loss');

    const params = net.namedParameters();
    assert.equal(params.map(([k]) => k), Object.keys(fx.grad), 'parameter names');
    for (const [k, p] of params) {
      assert.ok(p.grad, `${k} got no gradient`);
      assertClose(await p.grad!.toArray(), fx.grad[k], tolFor(fx.grad[k]), `${k}.grad`);
    }
    assertClose(await x.grad!.toArray(), fx.x_grad, tolFor(fx.x_grad), 'x.grad');

    // Running mean/var (momentum 0.1, unbiased variance) and num_batches_tracked (3 -> 4).
    const sd = net.stateDict();
    for (const [k, expected] of Object.entries(fx.state_after)) {
      const got = await sd.get(k)!.toArray();
      if (k.endsWith('num_batches_tracked')) assert.equal(Array.from(got), expected, k);
      else assertClose(got, expected, tolFor(expected), k);
    }

    for (const [, p] of params) {
      p.grad!.dispose();
      p.grad = null;
    }
    for (const t of [x.grad!, x, labels, out, loss, ...net.stateDict().values()]) t.dispose();
  });
});

test.run();
