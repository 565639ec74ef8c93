// In-place exponential moving average of one tensor towards another (shaders/ema.wgsl):
// target = m * target + (1 - m) * source, one dispatch, no readback, no autograd (it writes a
// tensor's storage directly, as the optimizer does). BYOL's target-encoder update.
import source from '../../shaders/ema.wgsl';
import { grid1d, launch } from '../launch.ts';
import type { Tensor } from '../tensor.ts';

/** target <- m * target + (1 - m) * source, in place (both f32, the same size). */
export function emaUpdate(target: Tensor, src: Tensor, m: number): void {
  if (target.dtype !== 'f32' || src.dtype !== 'f32') throw new TypeError(`emaUpdate: expected f32 tensors, got ${target.describe()} and ${src.describe()}`);
  if (target.size !== src.size) throw new RangeError(`emaUpdate: sizes differ: ${target.describe()} vs ${src.describe()}`);
  if (!(m >= 0 && m <= 1)) throw new RangeError(`emaUpdate: momentum must be in [0, 1], got ${m}`);
  const u = new ArrayBuffer(16);
  new Uint32Array(u, 0, 2).set([target.size, 0]);
  new Float32Array(u, 8, 2).set([m, 1 - m]);
  launch({
    kernel: { name: 'ema', source, entryPoint: 'ema' },
    label: `ema ${target.describe()}`,
    inputs: [src], outputs: [target], uniforms: u,
    workgroups: grid1d(Math.ceil(target.size / 4), 256),
  });
}
