// In-place exponential moving average of tensors towards others (shaders/ema.wgsl):
// target = m * target + (1 - m) * source, no readback, no autograd (it writes a tensor's storage
// directly, as the optimizer does). BYOL's target-encoder and MoCo's key-encoder update. Given
// lists, it updates four pairs per dispatch (engine/ops/slots.ts; one per dispatch on the
// reference path): a model's many small parameters cost a dispatch each otherwise.
import source from '../../shaders/ema.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { checkDtype } from '../tensor.ts';
import type { Tensor } from '../tensor.ts';
import { referenceKernels } from './kernel-path.ts';
import { inGroupsOf, slotLayout } from './slots.ts';

const V4 = 'vec4<f32>';
const kernels = declareKernels({
  name: 'ema',
  source,
  params: { counts: 'vec4<u32>', starts: 'vec4<u32>', m: 'f32', oneMinusM: 'f32' },
  entryPoints: {
    ema: { inputs: { S: V4 }, outputs: { T: V4 } },
    ema4: { inputs: { S0: V4, S1: V4, S2: V4, S3: V4 }, outputs: { T0: V4, T1: V4, T2: V4, T3: V4 } },
  },
});

/** target <- m * target + (1 - m) * source, in place (f32, the same sizes); for each pair when
 * given lists of the same length (the targets each in their own storage). */
export function emaUpdate(target: Tensor | readonly Tensor[], src: Tensor | readonly Tensor[], m: number): void {
  const targets = Array.isArray(target) ? target : [target as Tensor];
  const sources = Array.isArray(src) ? src : [src as Tensor];
  if (targets.length !== sources.length) throw new RangeError(`emaUpdate: ${targets.length} targets but ${sources.length} sources`);
  if (!(m >= 0 && m <= 1)) throw new RangeError(`emaUpdate: momentum must be in [0, 1], got ${m}`);
  const seen = new Set<GPUBuffer>();
  targets.forEach((t, i) => {
    const s = sources[i];
    checkDtype('emaUpdate', 'f32', t, s);
    if (t.size !== s.size) throw new RangeError(`emaUpdate: sizes differ: ${t.describe()} vs ${s.describe()}`);
    if (seen.has(t.buffer)) throw new RangeError(`emaUpdate: target ${t.describe()} is given twice (or shares storage with another target)`);
    seen.add(t.buffer);
  });
  const pairs = targets.map((t, i): [Tensor, Tensor] => [t, sources[i]]).filter(([t]) => t.size > 0);
  for (const group of inGroupsOf(pairs, referenceKernels() ? 1 : 4)) {
    const { counts, starts, workgroups } = slotLayout(group.map(([t]) => t.size));
    const params = { counts, starts, m, oneMinusM: 1 - m };
    const label = `ema ${group.map(([t]) => t.describe()).join(', ')}`;
    if (group.length === 4) {
      const [[T0, S0], [T1, S1], [T2, S2], [T3, S3]] = group;
      launch(kernels.ema4, { label, params, workgroups, inputs: { S0, S1, S2, S3 }, outputs: { T0, T1, T2, T3 } });
    } else {
      for (const [t, s] of group) {
        const one = slotLayout([t.size]);
        launch(kernels.ema, { label: `ema ${t.describe()}`, params: { counts: one.counts, starts: one.starts, m, oneMinusM: 1 - m }, workgroups: one.workgroups, inputs: { S: s }, outputs: { T: t } });
      }
    }
  }
}
