// PyTorch's default initializations, drawn on the host from a seedable generator.
import { Tensor } from '../tensor.ts';
import type { Shape } from '../shapes.ts';

/** A uniform [0, 1) generator. */
export type Random = () => number;

/** Deterministic uniform generator (mulberry32). */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let globalRandom: Random = mulberry32(0);

/** Seed the generator layers use when none is passed (PyTorch's torch.manual_seed for init). */
export function manualSeed(seed: number): void {
  globalRandom = mulberry32(seed);
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
