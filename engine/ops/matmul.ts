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
  defines: { TM: 'u32', TN: 'u32', WG_X: 'u32', WG_Y: 'u32', AElem: 'type', BElem: 'type', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { main: { inputs: { A: 'AElem', B: 'BElem' }, outputs: { C: 'f32' } } },
});

/** Each invocation computes TM x TN outputs (TN a multiple of 4); a workgroup is WG_X x WG_Y
 * invocations (at most 256, SwiftShader's limit). */
export interface MatmulTile { TM: number; TN: number; WG_X: number; WG_Y: number }

/** The tile every adapter runs: 8 x 8 outputs, 16 x 4 invocations (measured best on lavapipe
 * and on SwiftShader, bench/browser.ts). */
export const MATMUL_TILE: MatmulTile = { TM: 8, TN: 8, WG_X: 16, WG_Y: 4 };

const XYZW = 'xyzw';

/** How the kernel reads an operand: as vec4s of consecutive elements wherever the layout allows,
 * because on software adapters each load is a loop over the SIMD lanes (lavapipe) and a vec4
 * costs about what a scalar does:
 *   A 'm4': four rows of op(A) at one k (A transposed, M % 4 == 0)
 *   B 'n4': four columns of op(B) at one k (B not transposed, N % 4 == 0)
 * else one f32 each. (Reading four k at a time of A and of a transposed B, as dot products, was
 * measured no faster on lavapipe, and copying a transposed B to rows first costs more than it
 * saves: that strided copy runs at a fraction of the matmul's speed.) */
export interface MatmulLayout { a: 'f32' | 'm4'; b: 'f32' | 'n4' }

/** The vector loads a product of this shape and operand order allows (see MatmulLayout). */
export function matmulLayout(t: MatmulTile, M: number, N: number, transA: boolean, transB: boolean): MatmulLayout {
  return { a: transA && M % 4 === 0 && t.TM % 4 === 0 ? 'm4' : 'f32', b: !transB && N % 4 === 0 ? 'n4' : 'f32' };
}

const codeCache = new Map<string, ReturnType<typeof matmulCode>>();

function cachedCode(t: MatmulTile, transA: boolean, transB: boolean, layout: MatmulLayout): ReturnType<typeof matmulCode> {
  const key = `${t.TM} ${t.TN} ${transA} ${transB} ${layout.a} ${layout.b}`;
  let c = codeCache.get(key);
  if (!c) codeCache.set(key, (c = matmulCode(t, transA, transB, layout)));
  return c;
}

/** The unrolled parts of shaders/matmul.wgsl for one tile, operand order and layout. */
export function matmulCode(t: MatmulTile, transA: boolean, transB: boolean, layout: MatmulLayout): { SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { TM, TN } = t;
  if (TN % 4 !== 0 || TN < 4 || TM < 1) throw new RangeError(`matmul: tile ${TM}x${TN} needs TN a positive multiple of 4`);
  if (layout.a === 'm4' && (!transA || TM % 4 !== 0)) throw new RangeError('matmul: A read four rows at a time needs A transposed and TM a multiple of 4');
  if (layout.b === 'n4' && transB) throw new RangeError('matmul: B read four columns at a time needs B not transposed');
  const Q = TN / 4;
  const setup: string[] = [];
  const acc: string[] = [];
  const body: string[] = [];
  const store: string[] = [];
  // Base indices of the tile's rows of op(A) and columns of op(B), clamped into the matrix (edge
  // tiles compute garbage there and do not store it).
  if (layout.a === 'm4') {
    for (let q = 0; q < TM / 4; q++) setup.push(`  let a${q} = (baseA + min(row0 + ${4 * q}u, p.M - 4u)) / 4u;`);
  } else {
    for (let r = 0; r < TM; r++) {
      const row = `min(row0 + ${r}u, p.M - 1u)`;
      setup.push(transA ? `  let a${r} = baseA + ${row};` : `  let a${r} = baseA + ${row} * p.K;`);
    }
  }
  if (layout.b === 'n4') {
    for (let q = 0; q < Q; q++) setup.push(`  let b${q} = (baseB + min(col0 + ${4 * q}u, p.N - 4u)) / 4u;`);
  } else {
    for (let c = 0; c < TN; c++) {
      const col = `min(col0 + ${c}u, p.N - 1u)`;
      setup.push(transB ? `  let b${c} = baseB + ${col} * p.K;` : `  let b${c} = baseB + ${col};`);
    }
  }
  for (let r = 0; r < TM; r++) for (let q = 0; q < Q; q++) acc.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  if (layout.b === 'n4') body.push('    let rowB = k * (p.N / 4u);');
  else if (!transB) body.push('    let rowB = k * p.N;');
  for (let q = 0; q < Q; q++) {
    if (layout.b === 'n4') body.push(`    let vb${q} = B[b${q} + rowB];`);
    else {
      const at = (c: number) => (transB ? `B[b${c} + k]` : `B[b${c} + rowB]`);
      body.push(`    let vb${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => at(4 * q + i)).join(', ')});`);
    }
  }
  if (layout.a === 'm4') {
    body.push('    let colA = k * (p.M / 4u);');
    for (let q = 0; q < TM / 4; q++) body.push(`    let va${q} = A[a${q} + colA];`);
  } else if (transA) body.push('    let colA = k * p.M;');
  for (let r = 0; r < TM; r++) {
    let va = `va${r}`;
    if (layout.a === 'm4') va = `va${r >> 2}.${XYZW[r & 3]}`;
    else body.push(`    let va${r} = A[a${r} + ${transA ? 'colA' : 'k'}];`);
    for (let q = 0; q < Q; q++) body.push(`    c${r}_${q} += ${va} * vb${q};`);
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
  const t = MATMUL_TILE;
  const layout = matmulLayout(t, M, N, transA, transB);
  const vec = (v: boolean) => (v ? 'vec4<f32>' : 'f32');
  launch(kernels.main, {
    label: `matmul ${a.describe()}${transA ? 'ᵀ' : ''} x ${b.describe()}${transB ? 'ᵀ' : ''}`,
    inputs: { A: a, B: b },
    outputs: { C: out },
    params: { M, N, K, batchStrideA: batchA.length ? M * K : 0, batchStrideB: batchB.length ? K * N : 0, batchStrideC: M * N },
    defines: { ...t, AElem: vec(layout.a !== 'f32'), BElem: vec(layout.b !== 'f32'), ...cachedCode(t, transA, transB, layout) },
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
