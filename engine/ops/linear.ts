// Linear layer (PyTorch's F.linear): y = x W^T + b with W [out, in], through matmul's transposed
// B operand (no copy of W); the bias is a broadcast add. Backward comes from the two ops.
import { Tensor } from '../tensor.ts';
import { add } from './elementwise.ts';
import { matmul } from './matmul.ts';
import { reshape } from './shape.ts';

/** `x` [..., in], `weight` [out, in], `bias` [out] or null: returns [..., out]. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (weight.ndim !== 2) throw new RangeError(`linear: weight must be [out, in], got ${weight.describe()}`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new RangeError(`linear: input ${x.describe()} does not end in ${weight.shape[1]} features (weight ${weight.describe()})`);
  }
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new RangeError(`linear: bias must be [${weight.shape[0]}], got ${bias.describe()}`);
  }
  if (x.ndim === 1) {
    const x2 = reshape(x, [1, x.shape[0]]);
    const y2 = linear(x2, weight, bias);
    const y = reshape(y2, [weight.shape[0]]);
    if (!y.requiresGrad) { x2.dispose(); y2.dispose(); }
    return y;
  }
  const y = matmul(x, weight, { transB: true });
  if (!bias) return y;
  const out = add(y, bias);
  if (!y.requiresGrad) y.dispose();
  return out;
}
