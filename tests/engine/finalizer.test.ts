// The garbage-collection safety net (engine/tensor.ts): storage of a tensor that was never
// disposed goes back to the pool when the collector finds it, and `pool.leakCheckBytes` (what
// every leak check compares) stays put when that happens, caches the tensor owned included, so
// leak checks do not depend on when the collector runs. Node only: it needs the collector on demand.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, engine } from '../../engine/index.ts';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as () => void;

/** Collects until `done()` or gives up after `rounds` (finalizers run in later turns). */
async function collectUntil(done: () => boolean, rounds = 50): Promise<void> {
  for (let i = 0; i < rounds && !done(); i++) {
    collect();
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('collecting an undisposed tensor and its derived cache leaves the leak-check count unchanged', async () => {
  const pool = engine().pool;
  // Made in a closure so no reference outlives it; the derived cache is 1280 bytes, the owner 256.
  const make = () => {
    const w = Tensor.zeros([10]);
    w.derived('test cache', () => Tensor.zeros([300])).dispose();
  };
  await collectUntil(() => false, 3); // earlier tests' garbage first
  const finalizedBefore = pool.finalizedBytes;
  const derivedBefore = pool.derivedBytes;
  const liveBefore = pool.liveBytes;
  make();
  const counted = pool.leakCheckBytes;
  assert.is(pool.derivedBytes - derivedBefore, 1280, 'the cache is counted as derived');
  assert.is(pool.liveBytes - liveBefore, 256 + 1280, 'owner and cache are live');
  await collectUntil(() => pool.finalizedBytes > finalizedBefore);
  assert.is(pool.finalizedBytes - finalizedBefore, 256, 'the owner went through the finalizer');
  assert.is(pool.liveBytes, liveBefore, 'owner and cache back in the pool');
  assert.is(pool.derivedBytes, derivedBefore, 'the cache no longer counted as derived');
  assert.is(pool.leakCheckBytes, counted, 'leak-check count unchanged by the collector');
});

test('a disposed tensor frees its derived caches without the finalizer', () => {
  const pool = engine().pool;
  const finalizedBefore = pool.finalizedBytes;
  const before = pool.leakCheckBytes;
  const liveBefore = pool.liveBytes;
  const w = Tensor.zeros([10]);
  w.derived('test cache', () => Tensor.zeros([300])).dispose();
  w.dispose();
  assert.is(pool.liveBytes, liveBefore);
  assert.is(pool.finalizedBytes, finalizedBefore);
  assert.is(pool.leakCheckBytes, before);
});

test.run();
