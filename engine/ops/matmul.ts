// Batched matmul with optional transposed operands (shaders/matmul.wgsl).
import source from '../../shaders/matmul.wgsl';
import { record } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { shapeString } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { sum } from './reduce.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

const kernels = declareKernels({
  name: 'matmul',
  source,
  params: { M: 'u32', N: 'u32', K: 'u32', batchStrideA: 'u32', batchStrideB: 'u32', batchStrideC: 'u32' },
  defines: { TRANS_A: 'bool', TRANS_B: 'bool', B_VEC4: 'bool', BElem: 'type' },
  entryPoints: { main: { inputs: { A: 'f32', B: 'BElem' }, outputs: { C: 'f32' } } },
});

/**
 * `a` is [..., M, K] (or [..., K, M] with transA), `b` is [..., K, N] (or [..., N, K] with
 * transB). Batch dims must be equal, or one operand may be a plain matrix shared by the batch.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  checkDtype('matmul', 'f32', a, b);
  for (const t of [a, b]) {
    if (t.ndim < 2) throw new RangeError(`matmul: operands need at least 2 dims, got ${t.describe()}`);
  }
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [M, K] = transA ? [ac, ar] : [ar, ac];
  const [K2, N] = transB ? [bc, br] : [br, bc];
  if (K !== K2) {
    throw new RangeError(`matmul: inner dimensions differ: ${shapeString(a.shape)}${transA ? 'ᵀ' : ''} x ${shapeString(b.shape)}${transB ? 'ᵀ' : ''} (${K} vs ${K2})`);
  }
  const batchA = a.shape.slice(0, -2);
  const batchB = b.shape.slice(0, -2);
  let batchShape: readonly number[];
  if (batchA.length === 0) batchShape = batchB;
  else if (batchB.length === 0 || shapeString(batchA) === shapeString(batchB)) batchShape = batchA;
  else throw new RangeError(`matmul: batch dimensions ${shapeString(batchA)} and ${shapeString(batchB)} differ (they must match, or one operand must be a plain matrix)`);
  const batch = batchShape.reduce((n, d) => n * d, 1);
  const out = Tensor.empty([...batchShape, M, N]);
  const bVec4 = !transB && N % 4 === 0;
  launch(kernels.main, {
    label: `matmul ${a.describe()}${transA ? 'ᵀ' : ''} x ${b.describe()}${transB ? 'ᵀ' : ''}`,
    inputs: { A: a, B: b },
    outputs: { C: out },
    params: { M, N, K, batchStrideA: batchA.length ? M * K : 0, batchStrideB: batchB.length ? K * N : 0, batchStrideC: M * N },
    defines: { TRANS_A: transA, TRANS_B: transB, B_VEC4: bVec4, BElem: bVec4 ? 'vec4<f32>' : 'f32' },
    workgroups: [Math.ceil(N / 128), Math.ceil(M / 32), batch],
  });
  return record(out, 'matmul', [a, b], (g) => {
    // C = op(A) op(B): dop(A) = G op(B)ᵀ, dop(B) = op(A)ᵀ G, then undo each op.
    let ga: Tensor | null = null;
    let gb: Tensor | null = null;
    if (a.requiresGrad) {
      ga = transA ? matmul(b, g, { transA: transB, transB: true }) : matmul(g, b, { transB: !transB });
      if (batchA.length === 0 && batchShape.length > 0) ga = reduceBatch(ga, batchShape.length);
    }
    if (b.requiresGrad) {
      gb = transB ? matmul(g, a, { transA: true, transB: transA }) : matmul(a, g, { transA: !transA });
      if (batchB.length === 0 && batchShape.length > 0) gb = reduceBatch(gb, batchShape.length);
    }
    return [ga, gb];
  });
}

function reduceBatch(t: Tensor, batchDims: number): Tensor {
  const r = sum(t, [...Array(batchDims).keys()]);
  t.dispose();
  return r;
}
