// Shared by the training tests: take steps, read each loss, free the step's tensors.
import type { Trainer } from '../../ssql/train.ts';

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
