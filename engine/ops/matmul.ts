// Batched matmul with optional transposed operands (shaders/matmul.wgsl).
import source from '../../shaders/matmul.wgsl';
import { record } from '../autograd.ts';
import { choose } from '../tuning.ts';
import type { Bench, Candidate } from '../tuning.ts';
import { fixedSubgroupSize } from '../device.ts';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { shapeString } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { sum } from './reduce.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

const declaration = {
  params: { M: 'u32', N: 'u32', K: 'u32', batchStrideA: 'u32', batchStrideB: 'u32', batchStrideC: 'u32' },
  defines: { TM: 'u32', TN: 'u32', WG_X: 'u32', WG_Y: 'u32', KSTEP: 'u32', AElem: 'type', BElem: 'type', INPUTS: 'code', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { main: { inputs: { A: 'AElem', B: 'BElem' }, outputs: { C: 'f32' } } },
} as const;
const kernels = declareKernels({ name: 'matmul', source, ...declaration });
// The 'subgroup' design: the same shader with the extension its broadcasts need.
const subgroupKernels = declareKernels({ name: 'matmul', source: `enable subgroups;\n${source}`, ...declaration });

/** Each invocation computes TM x TN outputs (TN a multiple of 4); a workgroup is WG_X x WG_Y
 * invocations (at most 256, SwiftShader's limit). */
export interface MatmulTile { TM: number; TN: number; WG_X: number; WG_Y: number }

/** The rule's tile: 8 x 8 outputs, 16 x 4 invocations (measured best on lavapipe and on
 * SwiftShader, bench/browser.ts). */
export const MATMUL_TILE: MatmulTile = { TM: 8, TN: 8, WG_X: 16, WG_Y: 4 };

const XYZW = 'xyzw';

/** How the kernel reads an operand: as vec4s of consecutive elements wherever the layout allows,
 * because on software adapters each load is a loop over the SIMD lanes (lavapipe), whose
 * per-lane set-up a vec4 pays once for four floats (its components are still loaded one by one,
 * docs/environment.md):
 *   A 'm4': four rows of op(A) at one k (A transposed, M % 4 == 0)
 *   B 'n4': four columns of op(B) at one k (B not transposed, N % 4 == 0)
 *   A 'k4': one row of op(A) at four k (A not transposed, K % 4 == 0; the 'k4' design only)
 *   B 'k4': one column of op(B) at four k (B transposed, K % 4 == 0; the 'k4' design only)
 * else one f32 each. (Reading four k at a time was measured no faster on lavapipe, and copying a
 * transposed B to rows first costs more than it saves there: that strided copy runs at a
 * fraction of the matmul's speed. On SwiftShader, where every load of a lane-varying index is a
 * per-lane scalar load, four k per load of A saves most of A's loads.) */
export interface MatmulLayout { a: 'f32' | 'm4' | 'k4'; b: 'f32' | 'n4' | 'k4' }

/** The kernel designs: 'register' walks K one step at a time; 'k4' walks it four steps at a
 * time, reading operands that run along K as vec4s; 'subgroup' walks K one step at a time, and
 * the lanes of a subgroup, which share the tile's rows, each load a different row of op(A) and
 * pass it to the others with subgroupBroadcast (see MATMUL_RULE for which wins where). */
export type MatmulDesign = 'register' | 'k4' | 'subgroup';

/** The vector loads a product of this shape and operand order allows (see MatmulLayout). */
export function matmulLayout(t: MatmulTile, M: number, N: number, transA: boolean, transB: boolean, K = 0, design: MatmulDesign = 'register'): MatmulLayout {
  const k4 = design === 'k4' && K % 4 === 0 && K > 0;
  // The subgroup design loads one row of op(A) per lane: one f32 at each k.
  const a = design === 'subgroup' ? 'f32' : transA && M % 4 === 0 && t.TM % 4 === 0 ? 'm4' : !transA && k4 ? 'k4' : 'f32';
  const b = !transB && N % 4 === 0 ? 'n4' : transB && k4 ? 'k4' : 'f32';
  return { a, b };
}

const codeCache = new Map<string, ReturnType<typeof matmulCode>>();

function cachedCode(t: MatmulTile, transA: boolean, transB: boolean, layout: MatmulLayout, kStep: number, subgroup: number, fma: boolean): ReturnType<typeof matmulCode> {
  const key = `${t.TM} ${t.TN} ${t.WG_Y} ${transA} ${transB} ${layout.a} ${layout.b} ${kStep} ${subgroup} ${fma}`;
  let c = codeCache.get(key);
  if (!c) codeCache.set(key, (c = matmulCode(t, transA, transB, layout, kStep, subgroup, fma)));
  return c;
}

/** The unrolled parts of shaders/matmul.wgsl for one tile, operand order, layout and number of
 * k per loop step (`kStep` 4 needs K % 4 == 0; a 'k4' layout needs it); `subgroup` > 0 makes
 * the 'subgroup' design for subgroups of that size (TM a multiple of it, WG_Y 1, so that every
 * lane of a subgroup works on the same rows); `fma` writes the multiply-adds as fma() calls. */
export function matmulCode(t: MatmulTile, transA: boolean, transB: boolean, layout: MatmulLayout, kStep = 1, subgroup = 0, fma = false): { INPUTS: string; SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { TM, TN } = t;
  if (subgroup > 0 && (TM % subgroup !== 0 || t.WG_Y !== 1 || layout.a !== 'f32' || kStep !== 1)) {
    throw new RangeError(`matmul: the subgroup design needs TM a multiple of the subgroup size ${subgroup}, WG_Y 1, A read as f32 and kStep 1`);
  }
  if (TN % 4 !== 0 || TN < 4 || TM < 1) throw new RangeError(`matmul: tile ${TM}x${TN} needs TN a positive multiple of 4`);
  if (layout.a === 'm4' && (!transA || TM % 4 !== 0)) throw new RangeError('matmul: A read four rows at a time needs A transposed and TM a multiple of 4');
  if (layout.b === 'n4' && transB) throw new RangeError('matmul: B read four columns at a time needs B not transposed');
  if (layout.a === 'k4' && transA) throw new RangeError('matmul: A read four k at a time needs A not transposed');
  if (layout.b === 'k4' && !transB) throw new RangeError('matmul: B read four k at a time needs B transposed');
  if (kStep !== 1 && kStep !== 4) throw new RangeError(`matmul: kStep ${kStep} must be 1 or 4`);
  if ((layout.a === 'k4' || layout.b === 'k4') && kStep !== 4) throw new RangeError('matmul: a layout reading four k at a time needs kStep 4');
  const Q = TN / 4;
  const setup: string[] = [];
  const acc: string[] = [];
  const body: string[] = [];
  const store: string[] = [];
  // Invocations past the matrix leave at once, except in the subgroup design, where every lane
  // loads a row of A for the others (its loads are clamped, its stores skipped) and the
  // broadcasts need control flow that does not depend on the invocation (with WG_Y 1, no
  // workgroup lies wholly below the last row).
  if (subgroup === 0) setup.push('  if (col0 >= p.N || row0 >= p.M) { return; }');
  // Base indices of the tile's rows of op(A) and columns of op(B), clamped into the matrix (edge
  // tiles compute garbage there and do not store it). 'k4' bases count vec4s (K % 4 == 0, so
  // every row starts on one).
  if (subgroup > 0) {
    // Lane l holds rows l, l + subgroup, ...
    for (let g = 0; g < TM / subgroup; g++) {
      const row = `min(row0 + lane + ${g * subgroup}u, p.M - 1u)`;
      setup.push(transA ? `  let a${g} = baseA + ${row};` : `  let a${g} = baseA + ${row} * p.K;`);
    }
  } else if (layout.a === 'm4') {
    for (let q = 0; q < TM / 4; q++) setup.push(`  let a${q} = (baseA + min(row0 + ${4 * q}u, p.M - 4u)) / 4u;`);
  } else {
    for (let r = 0; r < TM; r++) {
      const row = `min(row0 + ${r}u, p.M - 1u)`;
      if (layout.a === 'k4') setup.push(`  let a${r} = (baseA + ${row} * p.K) / 4u;`);
      else setup.push(transA ? `  let a${r} = baseA + ${row};` : `  let a${r} = baseA + ${row} * p.K;`);
    }
  }
  if (layout.b === 'n4') {
    for (let q = 0; q < Q; q++) setup.push(`  let b${q} = (baseB + min(col0 + ${4 * q}u, p.N - 4u)) / 4u;`);
  } else {
    for (let c = 0; c < TN; c++) {
      const col = `min(col0 + ${c}u, p.N - 1u)`;
      if (layout.b === 'k4') setup.push(`  let b${c} = (baseB + ${col} * p.K) / 4u;`);
      else setup.push(transB ? `  let b${c} = baseB + ${col} * p.K;` : `  let b${c} = baseB + ${col};`);
    }
  }
  // Loop-invariant strides, hoisted (SwiftShader does not hoist them itself).
  if (layout.b === 'n4') setup.push('  let strideB = p.N / 4u;');
  if (layout.a === 'm4') setup.push('  let strideA = p.M / 4u;');
  for (let r = 0; r < TM; r++) for (let q = 0; q < Q; q++) acc.push(`  var c${r}_${q} = vec4<f32>(0.0);`);
  // Four-k loads once per loop step; the sub-steps j pick their component.
  if (layout.a === 'k4') body.push('    let k4 = k / 4u;');
  else if (layout.b === 'k4') body.push('    let k4 = k / 4u;');
  if (layout.a === 'k4') for (let r = 0; r < TM; r++) body.push(`    let ak${r} = A[a${r} + k4];`);
  if (layout.b === 'k4') for (let c = 0; c < TN; c++) body.push(`    let bk${c} = B[b${c} + k4];`);
  for (let j = 0; j < kStep; j++) {
    const kj = j === 0 ? 'k' : `(k + ${j}u)`;
    for (let q = 0; q < Q; q++) {
      if (layout.b === 'n4') body.push(`    let vb${j}_${q} = B[b${q} + ${kj} * strideB];`);
      else if (layout.b === 'k4') body.push(`    let vb${j}_${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => `bk${4 * q + i}.${XYZW[j]}`).join(', ')});`);
      else {
        const at = (c: number) => (transB ? `B[b${c} + ${kj}]` : `B[b${c} + ${kj} * p.N]`);
        body.push(`    let vb${j}_${q} = vec4<f32>(${[0, 1, 2, 3].map((i) => at(4 * q + i)).join(', ')});`);
      }
    }
    if (layout.a === 'm4') for (let q = 0; q < TM / 4; q++) body.push(`    let va${j}_${q} = A[a${q} + ${kj} * strideA];`);
    if (subgroup > 0) for (let g = 0; g < TM / subgroup; g++) body.push(`    let al${g} = A[a${g} + ${transA ? `${kj} * p.M` : kj}];`);
    for (let r = 0; r < TM; r++) {
      let va: string;
      if (subgroup > 0) {
        va = `va${j}_${r}`;
        body.push(`    let ${va} = subgroupBroadcast(al${Math.floor(r / subgroup)}, ${r % subgroup}u);`);
      } else if (layout.a === 'm4') va = `va${j}_${r >> 2}.${XYZW[r & 3]}`;
      else if (layout.a === 'k4') va = `ak${r}.${XYZW[j]}`;
      else {
        va = `va${j}_${r}`;
        body.push(`    let ${va} = A[a${r} + ${transA ? `${kj} * p.M` : kj}];`);
      }
      for (let q = 0; q < Q; q++) {
        body.push(fma ? `    c${r}_${q} = fma(vec4<f32>(${va}), vb${j}_${q}, c${r}_${q});` : `    c${r}_${q} += ${va} * vb${j}_${q};`);
      }
    }
  }
  for (let r = 0; r < TM; r++) {
    store.push(`  if (row0 + ${r}u < p.M) {`);
    store.push(`    let o${r} = baseC + (row0 + ${r}u) * p.N + col0;`);
    for (let c = 0; c < TN; c++) {
      store.push(`    if (col0 + ${c}u < p.N) { C[o${r} + ${c}u] = c${r}_${c >> 2}.${XYZW[c & 3]}; }`);
    }
    store.push('  }');
  }
  const INPUTS = `@builtin(global_invocation_id) gid: vec3<u32>${subgroup > 0 ? ', @builtin(subgroup_invocation_id) lane: u32' : ''}`;
  return { INPUTS, SETUP: setup.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** A kernel variant: a design, its tile, and whether its multiply-adds are fma() calls (faster
 * on SwiftShader, see matmulRule). */
export interface MatmulVariant { design: MatmulDesign; tile: MatmulTile; fma?: boolean }

/** The candidates every adapter is offered (names as the tuning cache stores them). */
export const MATMUL_VARIANTS: readonly Candidate<MatmulVariant>[] = [
  { name: 'register 8x8', config: { design: 'register', tile: MATMUL_TILE } },
  { name: 'k4 8x8', config: { design: 'k4', tile: MATMUL_TILE } },
  { name: 'k4 4x8', config: { design: 'k4', tile: { TM: 4, TN: 8, WG_X: 16, WG_Y: 4 } } },
  { name: 'k4 8x4', config: { design: 'k4', tile: { TM: 8, TN: 4, WG_X: 16, WG_Y: 4 } } },
  { name: 'subgroup 16x8', config: { design: 'subgroup', tile: { TM: 16, TN: 8, WG_X: 16, WG_Y: 1 } } },
  { name: 'subgroup 8x8', config: { design: 'subgroup', tile: { TM: 8, TN: 8, WG_X: 16, WG_Y: 1 } } },
  { name: 'subgroup 16x8 fma', config: { design: 'subgroup', tile: { TM: 16, TN: 8, WG_X: 16, WG_Y: 1 }, fma: true } },
];

/** The variants this adapter can run: the subgroup ones need a fixed subgroup size that
 * divides their TM. */
export function matmulCandidates(): Candidate<MatmulVariant>[] {
  const size = fixedSubgroupSize();
  return MATMUL_VARIANTS.filter((v) => v.config.design !== 'subgroup' || (size > 0 && v.config.tile.TM % size === 0));
}

/** The rule when nothing was measured: 'subgroup 16x8' where the adapter has fixed subgroups
 * of 8 (lavapipe), 'subgroup 16x8 fma' where they are 4 wide (SwiftShader), else 'register
 * 8x8'. SwiftShader turns every load at a
 * lane-varying index into a per-lane gather (each component of a vec4 too), and lavapipe gathers
 * too; in 'register 8x8' the lanes next to each other along a row of tiles gather the same
 * eight values of A at every k. Sharing them through subgroupBroadcast, and a taller tile, cut
 * the gathers per multiply-add from 16 per 64 to 4 + 8 per 128: measured 1.16x (256) and
 * 1.30x (512) faster on SwiftShader (same page, interleaved, quiet machine) and about 2-3x on
 * lavapipe. The 'k4'
 * variants are tuning candidates: on lavapipe 'k4 8x4' ran x Wᵀ at 64x512x(512 or 128) 12-20%
 * faster than 'register 8x8' and A x B at 256-512 up to 2x slower. SwiftShader's kernel is bound
 * by its multiply-adds (docs/environment.md); written as fma() they took 0.77-0.97 of the time
 * there (21 paired rounds, 256, 512 and the step's products); on lavapipe the same A/B was
 * inconclusive (0.86-1.17), so its pick stays. */
function matmulRule(candidates: readonly Candidate<MatmulVariant>[]): number {
  const pick = fixedSubgroupSize() === 4 ? 'subgroup 16x8 fma' : 'subgroup 16x8';
  return Math.max(0, candidates.findIndex((c) => c.name === pick));
}

/** Zero inputs of the product's shapes, for measuring candidates (engine/tuning.ts). */
function matmulBench(shapeA: readonly number[], shapeB: readonly number[], outShape: readonly number[], transA: boolean, transB: boolean, batch: number): Bench<MatmulVariant> {
  const a = Tensor.zeros(shapeA);
  const b = Tensor.zeros(shapeB);
  return {
    run: (v) => launchMatmul(a, b, Tensor.empty(outShape), transA, transB, batch, a.ndim > 2, b.ndim > 2, v),
    dispose: () => { a.dispose(); b.dispose(); },
  };
}

function launchMatmul(a: Tensor, b: Tensor, out: Tensor, transA: boolean, transB: boolean, batch: number, batchedA: boolean, batchedB: boolean, v: MatmulVariant): void {
  const [M, N] = out.shape.slice(-2);
  const K = transA ? a.shape[a.ndim - 2] : a.shape[a.ndim - 1];
  const t = v.tile;
  const layout = matmulLayout(t, M, N, transA, transB, K, v.design);
  const kStep = v.design === 'k4' && K % 4 === 0 ? 4 : 1;
  const vec = (x: boolean) => (x ? 'vec4<f32>' : 'f32');
  const subgroup = v.design === 'subgroup' ? fixedSubgroupSize() : 0;
  launch(subgroup > 0 ? subgroupKernels.main : kernels.main, {
    label: `matmul ${a.describe()}${transA ? 'ᵀ' : ''} x ${b.describe()}${transB ? 'ᵀ' : ''}${v.design === 'register' ? '' : ` ${v.design} ${t.TM}x${t.TN}`}${v.fma ? ' fma' : ''}`,
    inputs: { A: a, B: b },
    outputs: { C: out },
    params: { M, N, K, batchStrideA: batchedA ? M * K : 0, batchStrideB: batchedB ? K * N : 0, batchStrideC: M * N },
    defines: { ...t, KSTEP: kStep, AElem: vec(layout.a !== 'f32'), BElem: vec(layout.b !== 'f32'), ...cachedCode(t, transA, transB, layout, kStep, subgroup, v.fma ?? false) },
    workgroups: [Math.ceil(N / (t.TN * t.WG_X)), Math.ceil(M / (t.TM * t.WG_Y)), batch],
  });
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
  const candidates = matmulCandidates();
  const variant = choose('matmul', `M${M} K${K} N${N}${transA ? ' Aᵀ' : ''}${transB ? ' Bᵀ' : ''}`, candidates, matmulRule(candidates),
    () => matmulBench(a.shape, b.shape, out.shape, transA, transB, batch));
  launchMatmul(a, b, out, transA, transB, batch, batchA.length > 0, batchB.length > 0, variant.config);
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
