// The buffer pool under a training loop: live GPU memory must stay flat, the free lists bounded,
// and after the first iteration no new GPU buffer should be created at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import { Tensor, engine, scope } from '../../engine/index.ts';
import { randomArray, tensor } from '../helpers.ts';

const [B, IN, HID, OUT] = [8, 5, 6, 3];

function makeParams() {
  return {
    w1: tensor(randomArray([IN, HID], 1), [IN, HID], true), b1: tensor(randomArray([HID], 2), [HID], true),
    w2: tensor(randomArray([HID, OUT], 3), [HID, OUT], true), b2: tensor(randomArray([OUT], 4), [OUT], true),
  };
}
type Params = ReturnType<typeof makeParams>;

function loss(p: Params, x: Tensor, t: Tensor): Tensor {
  const hidden = E.relu(E.add(E.matmul(x, p.w1), p.b1));
  const diff = E.sub(E.add(E.matmul(hidden, p.w2), p.b2), t);
  return E.mean(E.mul(diff, diff));
}

test('1000 forward+backward iterations keep live GPU memory flat, the pool bounded, results stable', async () => {
  const pool = engine().pool;
  const p = makeParams();
  const x = tensor(randomArray([B, IN], 5), [B, IN]);
  const t = tensor(randomArray([B, OUT], 6), [B, OUT]);
  let first = { live: -1, pooled: -1, allocations: -1 };
  let maxPooled = 0;
  const snapshots: (Float32Array | Int32Array | Uint32Array)[][] = [];
  for (let it = 0; it < 1000; it++) {
    const l = scope(() => {
      const lossT = loss(p, x, t);
      lossT.backward();
      return it === 0 || it === 999 ? lossT : null;
    });
    // Recycled buffers must not change the answer: the first and last iterations agree exactly.
    // The readbacks are encoded now; the accounting below happens before any await, so no
    // finalizer of another test's forgotten tensor can run in between.
    const snapshot = l ? Promise.all([l.toArray(), ...Object.values(p).map((v) => v.grad!.toArray())]) : null;
    l?.dispose();
    for (const v of Object.values(p)) {
      v.grad!.dispose();
      v.grad = null;
    }
    if (it > 0) assert.is(pool.liveBytes, first.live, `iteration ${it}: live bytes ${pool.liveBytes}, after the first ${first.live}`);
    maxPooled = Math.max(maxPooled, pool.pooledBytes);
    if (snapshot) snapshots.push(await snapshot);
    if (it === 0) first = { live: pool.liveBytes, pooled: pool.pooledBytes, allocations: pool.allocations };
  }
  await engine().sync();
  assert.is(pool.allocations, first.allocations, 'no new GPU buffers after the first iteration');
  assert.ok(maxPooled <= first.pooled + 256, `pooled bytes grew from ${first.pooled} to ${maxPooled}`);
  assert.is(snapshots.length, 2);
  snapshots[0].forEach((a, k) => assert.equal([...snapshots[1][k]], [...a], `result ${k} changed between the first and last iteration`));
  for (const v of [...Object.values(p), x, t]) v.dispose();
});

test('forward and backward outside any scope leak nothing once the results are disposed', async () => {
  // Backward creates temporaries (unused gradients, pre-reduction broadcast gradients, partial
  // products); they must not outlive backward() even without an enclosing scope.
  const pool = engine().pool;
  const p = makeParams();
  const x = tensor(randomArray([B, IN], 7), [B, IN]);
  const t = tensor(randomArray([B, OUT], 8), [B, OUT]);
  const before = pool.liveBytes;
  const made: Tensor[] = [];
  const r = (v: Tensor) => (made.push(v), v);
  const h = r(E.relu(r(E.add(r(E.matmul(x, p.w1)), p.b1))));
  const y = r(E.add(r(E.matmul(h, p.w2)), p.b2));
  const d = r(E.sub(y, t));
  // div and powScalar build their gradients from several temporaries.
  const l = r(E.mean(r(E.div(r(E.powScalar(d, 2)), r(E.addScalar(r(E.abs(t)), 1))))));
  l.backward();
  for (const v of made) v.dispose();
  for (const v of Object.values(p)) {
    v.grad!.dispose();
    v.grad = null;
  }
  assert.is(pool.liveBytes, before, `live bytes ${before} -> ${pool.liveBytes}`);
  for (const v of [...Object.values(p), x, t]) v.dispose();
  await engine().sync();
});

test.run();
