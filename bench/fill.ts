// Seeded benchmark inputs (platform independent: the browser bench uses them too).
import { Tensor } from '../engine/index.ts';

/** A tensor of `shape` with seeded pseudo-random values in [-1, 1). */
export function filled(shape: readonly number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s / 4294967296) * 2 - 1; }
  return Tensor.fromArray(data, shape);
}
