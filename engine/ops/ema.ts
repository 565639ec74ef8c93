// In-place exponential moving average of one tensor towards another (shaders/ema.wgsl):
// target = m * target + (1 - m) * source, one dispatch, no readback, no autograd (it writes a
// tensor's storage directly, as the optimizer does). BYOL's target-encoder update.
import source from '../../shaders/ema.wgsl';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { checkDtype } from '../tensor.ts';
import type { Tensor } from '../tensor.ts';

const kernels = declareKernels({
  name: 'ema',
  source,
  params: { n: 'u32', m: 'f32', oneMinusM: 'f32' },
  entryPoints: { ema: { inputs: { S: 'vec4<f32>' }, outputs: { T: 'vec4<f32>' } } },
});

/** target <- m * target + (1 - m) * source, in place (both f32, the same size). */
export function emaUpdate(target: Tensor, src: Tensor, m: number): void {
  checkDtype('emaUpdate', 'f32', target, src);
  if (target.size !== src.size) throw new RangeError(`emaUpdate: sizes differ: ${target.describe()} vs ${src.describe()}`);
  if (!(m >= 0 && m <= 1)) throw new RangeError(`emaUpdate: momentum must be in [0, 1], got ${m}`);
  launch(kernels.ema, {
    label: `ema ${target.describe()}`,
    inputs: { S: src }, outputs: { T: target },
    params: { n: target.size, m, oneMinusM: 1 - m },
    workgroups: grid1d(Math.ceil(target.size / 4), 256),
  });
}
