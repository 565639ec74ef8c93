// Matmul: shapes mixing 1, 3, 17, 65, 130 (plus N % 4 == 0 for the vec4 path), all four
// transpose combinations, batches and a plain matrix broadcast over a batch; backward through
// finite differences.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../../engine/index.ts';
import { fixedSubgroupSize } from '../../engine/device.ts';
import { MATMUL_TILE, MATMUL_VARIANTS, matmulCandidates, matmulLayout } from '../../engine/ops/matmul.ts';
import type { Shape, Tensor } from '../../engine/index.ts';
import { assertClose, gradCheck, randomArray, tensor } from '../helpers.ts';
import * as ref from '../reference.ts';

const COMBOS: [boolean, boolean][] = [[false, false], [true, false], [false, true], [true, true]];
const tname = (ta: boolean, tb: boolean) => `${ta ? 'Aᵀ' : 'A'}${tb ? 'Bᵀ' : 'B'}`;

/** Storage shapes of A and B for logical [.., M, K] x [.., K, N]. */
function shapesFor(batchA: Shape, batchB: Shape, M: number, K: number, N: number, ta: boolean, tb: boolean): [Shape, Shape] {
  return [[...batchA, ...(ta ? [K, M] : [M, K])], [...batchB, ...(tb ? [N, K] : [K, N])]];
}

// (M, K, N): every size in {1, 3, 17, 65, 130} appears in each role; N = 4, 8, 68, 128 take
// the vec4 path of B (when B is not transposed), those with M % 4 == 0 (4, 12, 36, 68) read a
// transposed A four rows at a time, those with K % 4 == 0 (68, 20, 132, 4, 260) read A (not
// transposed) and a transposed B four k at a time in the 'k4' design (engine/ops/matmul.ts
// matmulLayout; the test below checks that every layout occurs here).
const FORWARD: [number, number, number][] = [
  [1, 1, 1],
  [3, 17, 4],
  [17, 65, 3],
  [65, 3, 17],
  [130, 17, 68],
  [17, 130, 65],
  [1, 65, 130],
  [130, 1, 8],
  [65, 130, 128],
  [17, 68, 65],
  [36, 20, 12],
  [12, 132, 13],
  [68, 4, 9],
  [4, 260, 4],
];

test('the forward shapes exercise every operand layout of the matmul kernel', () => {
  const seen = new Set<string>();
  for (const [ta, tb] of COMBOS) {
    for (const [M, K, N] of FORWARD) {
      for (const design of ['register', 'k4', 'subgroup'] as const) {
        const l = matmulLayout(MATMUL_TILE, M, N, ta, tb, K, design);
        seen.add(`${design} ${tname(ta, tb)} ${l.a} ${l.b}`);
      }
    }
  }
  const register = ['AB f32 n4', 'AB f32 f32', 'ABᵀ f32 f32', 'AᵀB m4 n4', 'AᵀB m4 f32', 'AᵀB f32 n4', 'AᵀB f32 f32', 'AᵀBᵀ m4 f32', 'AᵀBᵀ f32 f32'];
  const k4 = ['AB k4 n4', 'AB k4 f32', 'AB f32 n4', 'ABᵀ k4 k4', 'ABᵀ f32 f32', 'AᵀB m4 n4', 'AᵀB f32 f32', 'AᵀBᵀ m4 k4', 'AᵀBᵀ f32 k4', 'AᵀBᵀ f32 f32'];
  const subgroup = ['AB f32 n4', 'AB f32 f32', 'ABᵀ f32 f32', 'AᵀB f32 n4', 'AᵀB f32 f32', 'AᵀBᵀ f32 f32'];
  for (const want of [...register.map((w) => `register ${w}`), ...k4.map((w) => `k4 ${w}`), ...subgroup.map((w) => `subgroup ${w}`)]) {
    assert.ok(seen.has(want), `no forward shape runs the layout ${want}`);
  }
});

test('the subgroup variants run wherever subgroups have one fixed size of 4 or 8 (SwiftShader, lavapipe)', () => {
  const size = fixedSubgroupSize();
  const names = matmulCandidates().map((c) => c.name);
  const subgroupNames = MATMUL_VARIANTS.filter((v) => v.config.design === 'subgroup').map((v) => v.name);
  if (size === 4 || size === 8) for (const n of subgroupNames) assert.ok(names.includes(n), `${n} is not offered with subgroups of ${size}`);
  else for (const n of subgroupNames) assert.not.ok(names.includes(n), `${n} is offered without fixed subgroups of 4 or 8`);
});

// Every kernel variant this adapter runs (forced), so each is checked whatever the rule picks.
for (const variant of matmulCandidates()) {
  for (const [ta, tb] of COMBOS) {
    test(`matmul ${variant.name} ${tname(ta, tb)} forward against float64, ${FORWARD.length} shapes`, async () => {
      let seed = 1;
      E.forceVariant('matmul', variant.name);
      try {
        for (const [M, K, N] of FORWARD) {
          const [sa, sb] = shapesFor([], [], M, K, N, ta, tb);
          const da = randomArray(sa, seed++);
          const db = randomArray(sb, seed++);
          const a = tensor(da, sa);
          const b = tensor(db, sb);
          const c = E.matmul(a, b, { transA: ta, transB: tb });
          const expected = ref.matmul(da, sa, db, sb, ta, tb);
          assert.equal([...c.shape], expected.shape, `M=${M} K=${K} N=${N}: shape`);
          assertClose(await c.toArray(), expected.out, { rtol: 1e-4, atol: 1e-5 * Math.sqrt(K) }, `${variant.name} ${tname(ta, tb)} M=${M} K=${K} N=${N}`);
          for (const t of [a, b, c]) t.dispose();
        }
      } finally {
        E.forceVariant('matmul', null);
      }
    });
  }
}

for (const variant of matmulCandidates()) {
  test(`matmul ${variant.name} forward: batched, a plain matrix on either side broadcast over the batch, rank-4 batch`, async () => {
    const cases: { ba: Shape; bb: Shape; M: number; K: number; N: number; ta?: boolean; tb?: boolean }[] = [
      { ba: [2], bb: [2], M: 17, K: 3, N: 65 },
      { ba: [2], bb: [2], M: 3, K: 17, N: 8 },
      { ba: [3], bb: [], M: 17, K: 65, N: 4 },
      { ba: [], bb: [3], M: 65, K: 17, N: 3 },
      { ba: [2], bb: [2], M: 5, K: 7, N: 12, ta: true, tb: false },
      { ba: [3], bb: [], M: 9, K: 5, N: 17, ta: true, tb: true },
      { ba: [], bb: [2], M: 6, K: 9, N: 8, ta: false, tb: true },
      { ba: [2, 3], bb: [2, 3], M: 5, K: 4, N: 12 },
      { ba: [2, 3], bb: [], M: 5, K: 4, N: 3, tb: true },
    ];
    let seed = 50;
    E.forceVariant('matmul', variant.name);
    try {
      for (const c of cases) {
        const ta = c.ta ?? false;
        const tb = c.tb ?? false;
        const [sa, sb] = shapesFor(c.ba, c.bb, c.M, c.K, c.N, ta, tb);
        const da = randomArray(sa, seed++);
        const db = randomArray(sb, seed++);
        const a = tensor(da, sa);
        const b = tensor(db, sb);
        const out = E.matmul(a, b, { transA: ta, transB: tb });
        const expected = ref.matmul(da, sa, db, sb, ta, tb);
        const label = `${variant.name} [${sa}]${ta ? 'ᵀ' : ''} x [${sb}]${tb ? 'ᵀ' : ''}`;
        assert.equal([...out.shape], expected.shape, `${label}: shape`);
        assertClose(await out.toArray(), expected.out, { rtol: 1e-4, atol: 1e-4 }, label);
        for (const t of [a, b, out]) t.dispose();
      }
    } finally {
      E.forceVariant('matmul', null);
    }
  });
}

test('matmul agrees with a hand-written 2x3 by 3x2 product', async () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = tensor([7, 8, 9, 10, 11, 12], [3, 2]);
  const c = E.matmul(a, b);
  assert.equal([...(await c.toArray())], [1 * 7 + 2 * 9 + 3 * 11, 1 * 8 + 2 * 10 + 3 * 12, 4 * 7 + 5 * 9 + 6 * 11, 4 * 8 + 5 * 10 + 6 * 12]);
  for (const t of [a, b, c]) t.dispose();
});

const gradCpu = (sa: Shape, sb: Shape, ta: boolean, tb: boolean) => (a: Float64Array, b: Float64Array) => ref.matmul(a, sa, b, sb, ta, tb).out;

for (const [ta, tb] of COMBOS) {
  test(`matmul ${tname(ta, tb)} backward (finite differences)`, async () => {
    // (M, K, N) = (17, 5, 8): N % 4 == 0; (3, 17, 5): odd sizes throughout, and the gradient
    // products have N = K = 17 or N = M = 3.
    for (const [M, K, N] of [[17, 5, 8], [3, 17, 5]]) {
      const [sa, sb] = shapesFor([], [], M, K, N, ta, tb);
      await gradCheck({
        name: `matmul ${tname(ta, tb)} M=${M} K=${K} N=${N}`, shapes: [sa, sb],
        gpu: (a, b) => E.matmul(a, b, { transA: ta, transB: tb }),
        cpu: gradCpu(sa, sb, ta, tb),
      }, M + K + N);
    }
  });
}

test('matmul backward: batched and a plain matrix broadcast over the batch (either side)', async () => {
  const cases: { ba: Shape; bb: Shape; M: number; K: number; N: number; ta: boolean; tb: boolean }[] = [
    { ba: [2], bb: [2], M: 3, K: 5, N: 4, ta: false, tb: false },
    { ba: [3], bb: [], M: 5, K: 3, N: 4, ta: false, tb: false },
    { ba: [], bb: [3], M: 4, K: 5, N: 3, ta: false, tb: false },
    { ba: [2], bb: [], M: 3, K: 4, N: 5, ta: true, tb: true },
    { ba: [], bb: [2], M: 5, K: 3, N: 8, ta: true, tb: false },
    { ba: [2], bb: [], M: 4, K: 6, N: 3, ta: false, tb: true },
  ];
  let seed = 200;
  for (const c of cases) {
    const [sa, sb] = shapesFor(c.ba, c.bb, c.M, c.K, c.N, c.ta, c.tb);
    await gradCheck({
      name: `matmul [${sa}]${c.ta ? 'ᵀ' : ''} x [${sb}]${c.tb ? 'ᵀ' : ''}`, shapes: [sa, sb],
      gpu: (a: Tensor, b: Tensor) => E.matmul(a, b, { transA: c.ta, transB: c.tb }),
      cpu: gradCpu(sa, sb, c.ta, c.tb),
    }, seed++);
  }
});

test('matmul with only one operand requiring grad', async () => {
  await gradCheck({
    name: 'matmul grad of B only', shapes: [[4, 3], [3, 5]], check: [1],
    gpu: (a, b) => E.matmul(a, b), cpu: gradCpu([4, 3], [3, 5], false, false),
  }, 9);
  await gradCheck({
    name: 'matmul grad of A only (broadcast B)', shapes: [[2, 4, 3], [3, 5]], check: [0],
    gpu: (a, b) => E.matmul(a, b), cpu: gradCpu([2, 4, 3], [3, 5], false, false),
  }, 10);
});

test.run();
