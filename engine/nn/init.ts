// PyTorch's default initializations, drawn on the host from a seeded generator (engine/random.ts).
import { Tensor } from '../tensor.ts';
import type { Shape } from '../shapes.ts';
import { Rng } from '../random.ts';

/** A uniform [0, 1) source, e.g. `new Rng(seed).next`. */
export type Random = () => number;

let globalRandom: Random = new Rng(0).next;

/** Seed the generator layers use when none is passed (PyTorch's torch.manual_seed for init). */
export function manualSeed(seed: number): void {
  globalRandom = new Rng(seed).next;
}

export function defaultRandom(): Random {
  return globalRandom;
}

/** U(-bound, bound) values of `shape`. */
export function uniform(shape: Shape, bound: number, random: Random = globalRandom): Tensor {
  const n = shape.reduce((k, d) => k * d, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = (2 * random() - 1) * bound;
  return Tensor.fromArray(data, shape);
}

/** fan_in of a weight [out, in, ...kernel]. */
export function fanIn(shape: Shape): number {
  return shape.slice(1).reduce((k, d) => k * d, 1);
}

/** kaiming_uniform_(w, a=sqrt(5)) as nn.Linear and nn.Conv2d use: gain sqrt(2/(1+a^2)) times
 * sqrt(3/fan_in), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function kaimingUniformA5(shape: Shape, random: Random = globalRandom): Tensor {
  const a = Math.sqrt(5);
  const gain = Math.sqrt(2 / (1 + a * a));
  return uniform(shape, gain * Math.sqrt(3 / fanIn(shape)), random);
}
