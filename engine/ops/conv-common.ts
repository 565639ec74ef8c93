// What the conv kernel families (conv.ts, conv-subgroup.ts, conv-unrolled*.ts, conv-workgroup.ts,
// conv-stem.ts) share. It lives apart from conv.ts, which imports those files: they declare
// their kernels when loaded, so they cannot take a value from conv.ts.
import type { Tensor } from '../tensor.ts';
import { sum } from './reduce.ts';

/** The uniforms of a ConvGeometry, first in every conv kernel's params (a family adds its own
 * after them). */
export const convGeometryParams = {
  N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
  kH: 'u32', kW: 'u32', stride: 'u32', pad: 'u32',
} as const;

/** A weight gradient from `slices` partial sums stacked along axis 0 of `partial` (which this
 * disposes), or `partial` itself where there is one slice (then of the weight's shape). */
export function sumWeightGradSlices(partial: Tensor, slices: number): Tensor {
  if (slices === 1) return partial;
  const total = sum(partial, [0]);
  partial.dispose();
  return total;
}
