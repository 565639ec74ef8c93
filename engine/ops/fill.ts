// Tensors of zeros and ones shaped like another (the fill kernel itself is in launch.ts).
import { Tensor } from '../tensor.ts';

export function zerosLike(t: Tensor): Tensor {
  return Tensor.zeros(t.shape, { dtype: t.dtype });
}

export function onesLike(t: Tensor): Tensor {
  return Tensor.full(t.shape, 1, { dtype: t.dtype });
}
