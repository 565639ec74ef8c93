import source from '../../shaders/fill.wgsl';
import { launch, grid1d } from '../launch.ts';
import { Tensor } from '../tensor.ts';

/** Overwrite every element of `t` with the 32-bit pattern `bits`. */
export function fill(t: Tensor, bits: number): void {
  launch({
    kernel: { name: 'fill', source },
    label: `fill ${t.describe()}`,
    inputs: [],
    outputs: [t],
    uniforms: new Uint32Array([t.size, bits >>> 0, 0, 0]),
    workgroups: grid1d(t.size, 256),
  });
}

export function zerosLike(t: Tensor): Tensor {
  return Tensor.zeros(t.shape, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return Tensor.full(t.shape, 1, { dtype: t.dtype });
}
