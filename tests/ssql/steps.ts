// Shared by the training tests: take steps, read each loss, free the step's tensors; a tiny
// seeded dataset; and the checks every method's trainer must pass (flat GPU memory over steps,
// bit-identical resume from a checkpoint).
import * as assert from 'uvu/assert';
import { Rng, engine } from '../../engine/index.ts';
import { decodeSafetensors, encodeSafetensors } from '../../ssql/checkpoint/safetensors.ts';
import type { LabeledImages } from '../../ssql/data/cifar.ts';
import type { StepReport, TrainConfig } from '../../ssql/train.ts';
import { Trainer } from '../../ssql/train.ts';

/** Runs `steps` training steps and returns their losses. */
export async function run(trainer: Trainer, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const r = trainer.step();
    losses.push(await r.loss.item());
    for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
  }
  return losses;
}

/** A tiny synthetic grey dataset: 32 images of 8x8, seeded. */
export function syntheticImages(): LabeledImages {
  const count = 32;
  const r = new Rng(9).next;
  return {
    images: Uint8Array.from({ length: count * 64 }, () => Math.floor(r() * 256)),
    labels: Int32Array.from({ length: count }, (_, i) => i % 10),
    count, channels: 1, height: 8, width: 8,
  };
}

/** Every state tensor of the trainer's net, as raw bytes (compared bit for bit). */
export async function snapshot(trainer: Trainer): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const [k, t] of trainer.net.stateDict()) out.set(k, new Uint8Array((await t.toArray()).buffer.slice(0)));
  return out;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * `warmup` steps, then one step handed to `inspect`, then 3 more: every loss finite, and after
 * the warm-up no live or pooled bytes added and no new GPU buffer. Returns the net's state
 * before and after the measured steps.
 */
export async function checkStepsKeepMemoryFlat(trainer: Trainer, warmup: number, inspect: (r: StepReport) => void):
Promise<{ before: Map<string, Uint8Array>; after: Map<string, Uint8Array> }> {
  const pool = engine().pool;
  const first = await run(trainer, warmup);
  const before = await snapshot(trainer);
  await engine().sync();
  const live = pool.leakCheckBytes;
  const total = pool.liveBytes + pool.pooledBytes; // a GC finalization moves live to pooled
  const allocations = pool.allocations;
  const r = trainer.step();
  inspect(r);
  const losses = [...first, await r.loss.item()];
  for (const t of [r.loss, r.fp, r.quant]) t?.dispose();
  losses.push(...(await run(trainer, 3)));
  await engine().sync();
  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses.join(', ')}`);
  assert.is(pool.leakCheckBytes, live, 'live bytes grew');
  assert.is(pool.liveBytes + pool.pooledBytes, total, 'pooled bytes grew');
  assert.is(pool.allocations, allocations, 'new GPU buffers were allocated after warm-up');
  return { before, after: await snapshot(trainer) };
}

/**
 * 2*half steps straight against `half`, a checkpoint (through safetensors bytes, as a real
 * resume reads it), a restore into a new trainer and `half` more: the same losses step for step
 * and the same state bit for bit. Returns the decoded checkpoint and the straight run's losses
 * for the caller's own checks.
 */
export async function checkResumeIsExact(config: TrainConfig, data: LabeledImages, half = 2):
Promise<ReturnType<typeof decodeSafetensors> & { losses: number[] }> {
  const straight = new Trainer(config, data);
  const lossesA = await run(straight, 2 * half);
  const a = await snapshot(straight);
  straight.dispose();
  const firstHalf = new Trainer(config, data);
  const lossesB = await run(firstHalf, half);
  const ckpt = await firstHalf.checkpoint();
  firstHalf.dispose();
  const file = decodeSafetensors(encodeSafetensors(ckpt.tensors, ckpt.metadata));
  const resumed = new Trainer(config, data);
  resumed.restore(file.tensors, file.metadata);
  assert.is(resumed.globalStep, half);
  lossesB.push(...(await run(resumed, half)));
  const b = await snapshot(resumed);
  resumed.dispose();
  assert.equal(lossesB, lossesA, 'losses step for step');
  for (const [k, v] of a) assert.ok(sameBytes(v, b.get(k)!), `${k} differs after resume`);
  return { ...file, losses: lossesA };
}
