// The garbage-collection safety net (engine/tensor.ts): storage of a tensor that was never
// disposed goes back to the pool when the collector finds it, and the pool counts those bytes as
// finalized, so leak checks (live + finalized stays flat) do not depend on when the collector runs.
// Node only: it needs the collector on demand.
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

test('a dropped tensor and its derived caches are all counted as finalized', async () => {
  const pool = engine().pool;
  // Made in a closure so no reference outlives it; the derived cache is 1280 bytes, the owner 256.
  const make = () => {
    const w = Tensor.zeros([10]);
    w.derived('test cache', () => Tensor.zeros([300])).dispose();
    return w.id;
  };
  // Earlier tests' garbage first, so that only this test's tensors are finalized below.
  await collectUntil(() => false, 3);
  const finalizedBefore = pool.finalizedBytes;
  const derivedBefore = pool.derivedBytes;
  make();
  const live = pool.liveBytes + pool.finalizedBytes;
  assert.is(pool.derivedBytes - derivedBefore, 1280, 'the cache is counted as derived');
  await collectUntil(() => pool.finalizedBytes - finalizedBefore >= 256 + 1280);
  assert.is(pool.finalizedBytes - finalizedBefore, 256 + 1280, 'owner and cache both finalized');
  assert.is(pool.liveBytes + pool.finalizedBytes, live, 'live + finalized unchanged by the collector');
  assert.is(pool.derivedBytes, derivedBefore, 'the cache no longer counted as derived');
});

test('a disposed tensor frees its derived caches as live bytes, not finalized ones', () => {
  const pool = engine().pool;
  const finalizedBefore = pool.finalizedBytes;
  const liveBefore = pool.liveBytes;
  const w = Tensor.zeros([10]);
  w.derived('test cache', () => Tensor.zeros([300])).dispose();
  w.dispose();
  assert.is(pool.liveBytes, liveBefore);
  assert.is(pool.finalizedBytes, finalizedBefore);
});

test.run();
