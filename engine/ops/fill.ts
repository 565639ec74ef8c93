import source from '../../shaders/fill.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch, grid1d } from '../launch.ts';
import { Tensor } from '../tensor.ts';

const kernels = declareKernels({
  name: 'fill',
  source,
  params: { size: 'u32', bits: 'u32' },
  entryPoints: { main: { outputs: { Out: 'u32' } } },
});

/** Overwrite every element of `t` with the 32-bit pattern `bits`. */
export function fill(t: Tensor, bits: number): void {
  launch(kernels.main, {
    label: `fill ${t.describe()}`,
    inputs: {},
    outputs: { Out: t },
    params: { size: t.size, bits: bits >>> 0 },
    workgroups: grid1d(t.size, 256),
  });
}

export function zerosLike(t: Tensor): Tensor {
  return Tensor.zeros(t.shape, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return Tensor.full(t.shape, 1, { dtype: t.dtype });
}
