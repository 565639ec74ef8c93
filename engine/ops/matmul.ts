// Batched matmul with optional transposed operands (shaders/matmul.wgsl).
import source from '../../shaders/matmul.wgsl';
import { record } from '../autograd.ts';
import { launch } from '../launch.ts';
import { Tensor, shapeString } from '../tensor.ts';
import { sum } from './reduce.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

const LOAD_B_SCALAR = `
fn loadB4(base: u32, k: u32, col0: u32, cols: vec4<u32>) -> vec4<f32> {
  if (TRANS_B) {
    return vec4<f32>(B[base + cols.x * p.K + k], B[base + cols.y * p.K + k], B[base + cols.z * p.K + k], B[base + cols.w * p.K + k]);
  }
  let row = base + k * p.N;
  return vec4<f32>(B[row + cols.x], B[row + cols.y], B[row + cols.z], B[row + cols.w]);
}`;

// N % 4 == 0 and B not transposed: each 4-column group is one aligned vec4. A group that starts
// past the last column is clamped to the last group (its results are not stored).
const LOAD_B_VEC4 = `
fn loadB4(base: u32, k: u32, col0: u32, cols: vec4<u32>) -> vec4<f32> {
  return B[(base + k * p.N + min(col0, p.N - 4u)) / 4u];
}`;

/**
 * `a` is [..., M, K] (or [..., K, M] with transA), `b` is [..., K, N] (or [..., N, K] with
 * transB). Batch dims must be equal, or one operand may be a plain matrix shared by the batch.
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  for (const t of [a, b]) {
    t.buffer;
    if (t.dtype !== 'f32') throw new TypeError(`matmul: expected f32 tensors, got ${t.describe()}`);
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
  launch({
    kernel: {
      name: 'matmul', source,
      defines: { TRANS_A: transA, TRANS_B: transB, B_VEC4: bVec4, B_TYPE: bVec4 ? 'vec4<f32>' : 'f32', LOAD_B: bVec4 ? LOAD_B_VEC4 : LOAD_B_SCALAR },
    },
    label: `matmul ${a.describe()}${transA ? 'ᵀ' : ''} x ${b.describe()}${transB ? 'ᵀ' : ''}`,
    inputs: [a, b],
    outputs: [out],
    uniforms: new Uint32Array([M, N, K, 0, batchA.length ? M * K : 0, batchB.length ? K * N : 0, M * N, 0]),
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
