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
  defines: { TM: 'u32', TN: 'u32', WG_X: 'u32', WG_Y: 'u32', BElem: 'type', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { main: { inputs: { A: 'f32', B: 'BElem' }, outputs: { C: 'f32' } } },
});

/** Each invocation computes TM x TN outputs (TN a multiple of 4); a workgroup is WG_X x WG_Y
 * invocations (at most 256, SwiftShader's limit). */
export interface MatmulTile { TM: number; TN: number; WG_X: number; WG_Y: number }

/** The tile every adapter runs: 8 x 8 outputs, 16 x 4 invocations (measured best on lavapipe
 * and on SwiftShader, bench/browser.ts). */
export const MATMUL_TILE: MatmulTile = { TM: 8, TN: 8, WG_X: 16, WG_Y: 4 };

const XYZW = 'xyzw';
const codeCache = new Map<string, ReturnType<typeof matmulCode>>();

function cachedCode(t: MatmulTile, transA: boolean, transB: boolean, bVec4: boolean): ReturnType<typeof matmulCode> {
  const key = `${t.TM} ${t.TN} ${transA} ${transB} ${bVec4}`;
  let c = codeCache.get(key);
  if (!c) codeCache.set(key, (c = matmulCode(t, transA, transB, bVec4)));
  return c;
}

/** The unrolled parts of shaders/matmul.wgsl for one tile and operand layout. `bVec4`: B is
 * read as aligned vec4 rows (not transposed, N % 4 == 0). */
export function matmulCode(t: MatmulTile, transA: boolean, transB: boolean, bVec4: boolean): { SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { TM, TN } = t;
  if (TN % 4 !== 0 || TN < 4 || TM < 1) throw new RangeError(`matmul: tile ${TM}x${TN} needs TN a positive multiple of 4`);
  const Q = TN / 4;
  const setup: string[] = [];
  const acc: string[] = [];
  const body: string[] = [];
  const store: string[] = [];
  for (let r = 0; r < TM; r++) {
    const row = `min(row0 + ${r}u, p.M - 1u)`;
    setup.push(transA ? `  let a${r} = baseA + ${row};` : `  let a${r} = baseA + ${row} * p.K;`);
  }
  if (bVec4) {
    for (let q = 0; q < Q; q++) setup.push(`  let b${q} = (baseB + min(col0 + ${4 * q}u, p.N - 4u)) / 4u;`);
  } else {
    for (let c = 0; c < TN; c++) {
      const col = `min(col0 + ${c}u, p.N - 1u)`;
      setup.push(transB ? `  let b${c} = baseB + ${col} * p.K;` : `  let b${c} = baseB + ${col};`);
    }
  }
  for (let r = 0; r < TM; r++) for (let q = 0; q < Q; q++) acc.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  if (bVec4) body.push('    let rowB = k * (p.N / 4u);');
  else if (!transB) body.push('    let rowB = k * p.N;');
  for (let q = 0; q < Q; q++) {
    if (bVec4) body.push(`    let vb${q} = B[b${q} + rowB];`);
    else {
      const at = (c: number) => (transB ? `B[b${c} + k]` : `B[b${c} + rowB]`);
      body.push(`    let vb${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => at(4 * q + i)).join(', ')});`);
    }
  }
  if (transA) body.push('    let colA = k * p.M;');
  for (let r = 0; r < TM; r++) {
    body.push(`    let va${r} = A[a${r} + ${transA ? 'colA' : 'k'}];`);
    for (let q = 0; q < Q; q++) body.push(`    c${r}_${q} += va${r} * vb${q};`);
  }
  for (let r = 0; r < TM; r++) {
    store.push(`  if (row0 + ${r}u < p.M) {`);
    store.push(`    let o${r} = baseC + (row0 + ${r}u) * p.N + col0;`);
    for (let c = 0; c < TN; c++) {
      store.push(`    if (col0 + ${c}u < p.N) { C[o${r} + ${c}u] = c${r}_${c >> 2}.${XYZW[c & 3]}; }`);
    }
    store.push('  }');
  }
  return { SETUP: setup.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

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
  const t = MATMUL_TILE;
  launch(kernels.main, {
    label: `matmul ${a.describe()}${transA ? 'ᵀ' : ''} x ${b.describe()}${transB ? 'ᵀ' : ''}`,
    inputs: { A: a, B: b },
    outputs: { C: out },
    params: { M, N, K, batchStrideA: batchA.length ? M * K : 0, batchStrideB: batchB.length ? K * N : 0, batchStrideC: M * N },
    defines: { ...t, BElem: bVec4 ? 'vec4<f32>' : 'f32', ...cachedCode(t, transA, transB, bVec4) },
    workgroups: [Math.ceil(N / (t.TN * t.WG_X)), Math.ceil(M / (t.TM * t.WG_Y)), batch],
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
