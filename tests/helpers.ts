// Test helpers: seeded random data, float64 references, closeness checks that name the worst
// element, and gradient checks against central finite differences in float64.
import * as assert from 'uvu/assert';
import { Rng, Tensor, engine, scope } from '../engine/index.ts';
import type { Shape } from '../engine/index.ts';

/** True on SwiftShader (the browser suite), where each distinct pipeline takes seconds to
 * compile. Tests that sweep many tiles of one kernel run the rule's tile on every shape there
 * and the other tiles on a few shapes: the tile arithmetic is the same WGSL on both adapters and
 * lavapipe (the Node suite) checks every tile on every shape. */
export function slowPipelineCompiles(): boolean {
  return engine().adapter.architecture === 'swiftshader';
}

/** A seeded uniform [0, 1) source (the engine's generator). */
export function rng(seed: number): () => number {
  return new Rng(seed).next;
}

export function size(shape: Shape): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Uniform values in [lo, hi), rounded to f32 so the float64 reference sees exactly what the GPU sees. */
export function randomArray(shape: Shape, seed: number, lo = -1, hi = 1): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: size(shape) }, () => Math.fround(lo + (hi - lo) * r()));
}

export function tensor(data: ArrayLike<number>, shape: Shape, requiresGrad = false): Tensor {
  return Tensor.fromArray(data, shape, { requiresGrad });
}

export interface Tolerance {
  rtol?: number;
  atol?: number;
}

/** Fails on the first NaN (poisoned, unwritten output) or on the worst relative miss. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = {}, what = 'value'): void {
  const rtol = tol.rtol ?? 1e-5;
  const atol = tol.atol ?? 1e-6;
  assert.is(actual.length, expected.length, `${what}: length ${actual.length}, expected ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) !== Number.isNaN(e)) assert.unreachable(`${what}[${i}] is ${a}, expected ${e} (NaN: an element the kernel never wrote?)`);
    if (Number.isNaN(a)) continue;
    if (a === e) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > worstExcess || !Number.isFinite(excess)) {
      worstExcess = Number.isFinite(excess) ? excess : Infinity;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.unreachable(`${what}[${worst}] = ${actual[worst]}, expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Asserts that `fn` throws and that its message matches every pattern. (uvu's assert.throws
 * re-raises assertion errors and checks one pattern.) */
export function throwsWith(fn: () => unknown, ...patterns: RegExp[]): void {
  let message: string | null = null;
  try {
    fn();
  } catch (e) {
    message = (e as Error).message;
  }
  assert.ok(message !== null, `expected an error matching ${patterns.join(', ')}`);
  for (const p of patterns) assert.match(message!, p, `message "${message}" should match ${p}`);
}

export interface GradCheckCase {
  name: string;
  shapes: Shape[];
  /** The op on the GPU. */
  gpu: (...inputs: Tensor[]) => Tensor;
  /** The same op in float64 on the CPU: returns the flat output. */
  cpu: (...inputs: Float64Array[]) => ArrayLike<number>;
  /** Input generator (default uniform [-1, 1)). */
  inputs?: (shape: Shape, k: number) => Float64Array;
  /** Which inputs to check (default all). */
  check?: number[];
  eps?: number;
  tol?: Tolerance;
}

/**
 * Checks the forward output against `cpu` and each input gradient against central finite
 * differences of L = sum(cpu(x) * R) in float64, with a random R fed to backward().
 */
export async function gradCheck(c: GradCheckCase, seed = 1): Promise<void> {
  const data = c.shapes.map((s, k) => (c.inputs ? c.inputs(s, k) : randomArray(s, seed * 100 + k)));
  const expectedOut = Float64Array.from(c.cpu(...data));
  const r = randomArray([expectedOut.length], seed * 100 + 99);
  const eps = c.eps ?? 1e-3;
  const check = c.check ?? c.shapes.map((_, k) => k);

  const inputs = data.map((d, k) => tensor(d, c.shapes[k], check.includes(k)));
  const out = c.gpu(...inputs);
  assertClose(await out.toArray(), expectedOut, c.tol ?? { rtol: 1e-4, atol: 1e-5 }, `${c.name} forward`);
  const rT = tensor(r, out.shape);
  out.backward(rT);
  for (const k of check) {
    const numeric = new Float64Array(data[k].length);
    for (let i = 0; i < data[k].length; i++) {
      const orig = data[k][i];
      data[k][i] = orig + eps;
      const plus = dot(c.cpu(...data), r);
      data[k][i] = orig - eps;
      const minus = dot(c.cpu(...data), r);
      data[k][i] = orig;
      numeric[i] = (plus - minus) / (2 * eps);
    }
    const grad = inputs[k].grad;
    assert.ok(grad, `${c.name}: input ${k} got no gradient`);
    assertClose(await grad!.toArray(), numeric, c.tol ?? { rtol: 1e-2, atol: 1e-3 }, `${c.name} grad of input ${k}`);
  }
  for (const t of [...inputs, out, rT]) {
    t.grad?.dispose();
    t.dispose();
  }
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Runs `fn` and checks that no GPU storage it created outlives it. Storage that the GC safety
 * net frees meanwhile (tensors some earlier test forgot) is counted back in, so the check is
 * exact and not at the mercy of GC timing; caches owned by longer-lived tensors (a weight's
 * packed copy, made or dropped while `fn` ran) are left out. */
export async function noLeaks(fn: () => Promise<void>): Promise<void> {
  const pool = engine().pool;
  const live = () => pool.leakCheckBytes;
  const before = live();
  await fn();
  assert.is(live(), before, `live GPU bytes changed: ${before} -> ${live()}`);
}

export { scope };
