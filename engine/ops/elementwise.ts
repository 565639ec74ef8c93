// Element-wise ops. Each op is one row of a table: its WGSL expression and its gradient in terms
// of other ops. The kernel (shaders/elementwise.wgsl), the autograd wiring and the tests all
// follow from the table.
import addNSource from '../../shaders/add-n.wgsl';
import source from '../../shaders/elementwise.wgsl';
import { record, setGradientArithmetic } from '../autograd.ts';
import { declareKernels } from '../kernels.ts';
import { grid1d, launch } from '../launch.ts';
import { broadcastShapes, broadcastStrides, contiguousStrides, sizeOf } from '../shapes.ts';
import type { Shape } from '../shapes.ts';
import { Tensor, checkDtype } from '../tensor.ts';
import { onesLike } from './fill.ts';
import { referenceKernels } from './kernel-path.ts';
import { sumTo } from './reduce-kernel.ts';

const MAX_RANK = 8;
/** vec4s per invocation of the fast path (PER in the shader) times its workgroup size. */
const VEC4_PER_GROUP = 8 * 256;

const kernels = declareKernels({
  name: 'elementwise',
  source,
  profileByOp: true,
  params: {
    size: 'u32', rank: 'u32', s: 'f32', s2: 'f32',
    offsetA: 'u32', offsetB: 'u32', offsetOut: 'u32', linearA: 'u32', linearB: 'u32', linearOut: 'u32',
    innerA: 'u32', innerB: 'u32', chansA: 'u32', chansB: 'u32',
    shape: `array<u32, ${MAX_RANK}>`, strideA: `array<u32, ${MAX_RANK}>`, strideB: `array<u32, ${MAX_RANK}>`, strideOut: `array<u32, ${MAX_RANK}>`,
  },
  defines: { T: 'type', V: 'type', EXPR: 'code', STRIDED: 'bool', HAS_B: 'bool', MODE_A: 'u32', MODE_B: 'u32' },
  entryPoints: {
    unary: { inputs: { A: 'T' }, outputs: { UnaryOut: 'T' } },
    binary: { inputs: { A: 'T', B: 'T' }, outputs: { BinaryOut: 'T' } },
    map4: { inputs: { VA: 'V', VB: 'V' }, outputs: { VOut: 'V' } },
  },
});

export interface StridedOperand {
  tensor: Tensor;
  offset: number;
  strides: readonly number[];
}

interface MapSpec {
  name: string;
  expr: string;
  type: 'f32' | 'u32';
  iterShape: Shape;
  a: StridedOperand;
  b?: StridedOperand;
  out: StridedOperand;
  s?: number;
  s2?: number;
}

function isLinear(op: StridedOperand, shape: Shape): 0 | 1 | null {
  const c = contiguousStrides(shape);
  if (op.strides.every((s, i) => s === c[i] || shape[i] === 1)) return 1;
  if (op.strides.every((s, i) => s === 0 || shape[i] === 1)) return 0;
  return null;
}

/** How the fast path reads an operand (shaders/elementwise.wgsl, map4's operand modes), or
 * null when it cannot. */
interface FastOperand { mode: 0 | 1 | 2 | 3 | 4; inner: number; chans: number }

function fastOperand(op: StridedOperand, shape: Shape, linear: 0 | 1 | null): FastOperand | null {
  if (linear === 1) return op.offset % 4 === 0 ? { mode: 0, inner: 1, chans: 1 } : null;
  if (linear === 0) return { mode: 1, inner: 1, chans: 1 };
  // A contiguous block of dims broadcast over the dims around it: element offset + (e / inner) % chans.
  const dims = shape.flatMap((n, d) => (n === 1 ? [] : [d]));
  const used = dims.filter((d) => op.strides[d] !== 0);
  if (used.length === 0) return null;
  const at = dims.indexOf(used[0]);
  if (dims.slice(at, at + used.length).some((d, k) => d !== used[k])) return null;
  let expect = 1;
  for (let k = used.length - 1; k >= 0; k--) {
    if (op.strides[used[k]] !== expect) return null;
    expect *= shape[used[k]];
  }
  const chans = expect;
  const inner = dims.slice(at + used.length).reduce((n, d) => n * shape[d], 1);
  if (inner % 4 === 0) return { mode: 2, inner, chans };
  if (inner === 1 && chans % 4 === 0 && op.offset % 4 === 0) return { mode: 3, inner, chans };
  return { mode: 4, inner, chans };
}

/** The one entry point to the element-wise kernel. */
export function mapKernel(m: MapSpec): void {
  const rank = m.iterShape.length;
  if (rank > MAX_RANK) throw new RangeError(`${m.name}: tensors of rank ${rank} are not supported (at most ${MAX_RANK})`);
  const size = sizeOf(m.iterShape);
  const a = m.a;
  const b = m.b ?? m.a; // unary ops: B's params are unused
  const linear = [a, b, m.out].map((o) => isLinear(o, m.iterShape));
  const label = m.b ? `${m.name} ${a.tensor.describe()}, ${m.b.tensor.describe()}` : `${m.name} ${a.tensor.describe()}`;
  const fastA = fastOperand(a, m.iterShape, linear[0]);
  const fastB = m.b ? fastOperand(b, m.iterShape, linear[1]) : fastA;
  const fast = !referenceKernels() && linear[2] === 1 && m.out.offset % 4 === 0 && fastA !== null && fastB !== null;
  const params = {
    size, rank, s: m.s ?? 0, s2: m.s2 ?? 0,
    offsetA: a.offset, offsetB: b.offset, offsetOut: m.out.offset,
    linearA: linear[0] ?? 0, linearB: linear[1] ?? 0, linearOut: linear[2] ?? 0,
    innerA: fastA?.inner ?? 1, innerB: fastB?.inner ?? 1,
    chansA: fastA?.chans ?? 1, chansB: fastB?.chans ?? 1,
    shape: m.iterShape, strideA: a.strides, strideB: b.strides, strideOut: m.out.strides,
  };
  const V = `vec4<${m.type}>`;
  if (fast) {
    launch(kernels.map4, {
      label, params, defines: { T: m.type, V, EXPR: m.expr, STRIDED: false, HAS_B: !!m.b, MODE_A: fastA!.mode, MODE_B: m.b ? fastB!.mode : 0 },
      inputs: { VA: a.tensor, VB: b.tensor }, outputs: { VOut: m.out.tensor },
      workgroups: grid1d(Math.ceil(size / 4), VEC4_PER_GROUP),
    });
    return;
  }
  const defines = { T: m.type, V, EXPR: m.expr, STRIDED: referenceKernels() || linear.some((l) => l === null), HAS_B: false, MODE_A: 0, MODE_B: 0 };
  const workgroups = grid1d(size, 256);
  if (m.b) {
    launch(kernels.binary, { label, inputs: { A: a.tensor, B: m.b.tensor }, outputs: { BinaryOut: m.out.tensor }, params, defines, workgroups });
  } else {
    launch(kernels.unary, { label, inputs: { A: a.tensor }, outputs: { UnaryOut: m.out.tensor }, params, defines, workgroups });
  }
}

function unaryKernel(name: string, expr: string, x: Tensor, s = 0, s2 = 0): Tensor {
  checkDtype(name, 'f32', x);
  const out = Tensor.empty(x.shape);
  const strides = contiguousStrides(x.shape);
  mapKernel({
    name, expr, type: 'f32', iterShape: x.shape, s, s2,
    a: { tensor: x, offset: 0, strides }, out: { tensor: out, offset: 0, strides },
  });
  return out;
}

function binaryKernel(name: string, expr: string, a: Tensor, b: Tensor): Tensor {
  checkDtype(name, 'f32', a, b);
  const shape = broadcastShapes(a.shape, b.shape, name);
  const out = Tensor.empty(shape);
  mapKernel({
    name, expr, type: 'f32', iterShape: shape,
    a: { tensor: a, offset: 0, strides: broadcastStrides(a.shape, shape) },
    b: { tensor: b, offset: 0, strides: broadcastStrides(b.shape, shape) },
    out: { tensor: out, offset: 0, strides: contiguousStrides(shape) },
  });
  return out;
}

// ---- the table -----------------------------------------------------------------------------
// Unary ops: `expr` in a (the element) and s, s2 (scalar arguments). `grad(g, x, y, s)` gives
// dL/dx from dL/dy = g, the input x and the output y.
interface UnaryOp {
  expr: string;
  grad: ((g: Tensor, x: Tensor, y: Tensor, s: number) => Tensor) | null;
}

export const unaryOps = {
  neg: { expr: '-a', grad: (g) => neg(g) },
  relu: { expr: 'max(a, 0.0)', grad: (g, x) => reluBackward(g, x) },
  exp: { expr: 'exp(a)', grad: (g, _x, y) => mul(g, y) },
  log: { expr: 'log(a)', grad: (g, x) => div(g, x) },
  sqrt: { expr: 'sqrt(a)', grad: (g, _x, y) => div(mulScalar(g, 0.5), y) },
  abs: { expr: 'abs(a)', grad: (g, x) => mul(g, sign(x)) },
  sign: { expr: 'sign(a)', grad: null },
  addScalar: { expr: 'a + s', grad: (g) => g },
  mulScalar: { expr: 'a * s', grad: (g, _x, _y, s) => mulScalar(g, s) },
  /** s - a */
  rsubScalar: { expr: 's - a', grad: (g) => neg(g) },
  divScalar: { expr: 'a / s', grad: (g, _x, _y, s) => divScalar(g, s) },
  powScalar: { expr: 'pow_f(a, s)', grad: (g, x, _y, s) => mul(g, mulScalar(powScalar(x, s - 1), s)) },
} satisfies Record<string, UnaryOp>;

// Binary ops with broadcasting: `grad(g, a, b, y)` gives [dL/da, dL/db] before reduction to
// the operands' shapes (sumTo does that).
interface BinaryOp {
  expr: string;
  grad: ((g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null]) | null;
}

export const binaryOps = {
  add: { expr: 'a + b', grad: (g) => [g, g] },
  sub: { expr: 'a - b', grad: (g) => [g, neg(g)] },
  mul: { expr: 'a * b', grad: (g, a, b) => [mul(g, b), mul(g, a)] },
  div: { expr: 'a / b', grad: (g, a, b) => [div(g, b), neg(div(mul(g, a), mul(b, b)))] },
  pow: {
    expr: 'pow_f(a, b)',
    grad: (g, a, b, y) => [mul(g, mul(b, pow(a, addScalar(b, -1)))), mul(g, mul(y, log(a)))],
  },
  // At ties the gradient is split evenly between the operands, as PyTorch does.
  maximum: { expr: 'max(a, b)', grad: (g, a, b) => [mul(g, winShare(a, b)), mul(g, winShare(b, a))] },
  minimum: { expr: 'min(a, b)', grad: (g, a, b) => [mul(g, winShare(b, a)), mul(g, winShare(a, b))] },
  equal: { expr: 'select(0.0, 1.0, a == b)', grad: null },
  greater: { expr: 'select(0.0, 1.0, a > b)', grad: null },
  greaterEqual: { expr: 'select(0.0, 1.0, a >= b)', grad: null },
  less: { expr: 'select(0.0, 1.0, a < b)', grad: null },
  lessEqual: { expr: 'select(0.0, 1.0, a <= b)', grad: null },
  /** 1 where a > b, 1/2 where a == b, else 0: a's share of max(a, b)'s gradient. */
  winShare: { expr: 'select(select(0.0, 0.5, a == b), 1.0, a > b)', grad: null },
  /** The gradient of relu: g where x > 0, else 0 (a = g, b = x). */
  reluBackward: { expr: 'select(0.0, a, b > 0.0)', grad: null },
} satisfies Record<string, BinaryOp>;

export type UnaryOpName = keyof typeof unaryOps;
export type BinaryOpName = keyof typeof binaryOps;

export function unary(name: UnaryOpName, x: Tensor, s = 0): Tensor {
  const op: UnaryOp = unaryOps[name];
  const y = unaryKernel(name, op.expr, x, s);
  const grad = op.grad;
  if (grad) record(y, name, [x], (g) => [grad(g, x, y, s)]);
  return y;
}

export function binary(name: BinaryOpName, a: Tensor, b: Tensor): Tensor {
  const op: BinaryOp = binaryOps[name];
  const y = binaryKernel(name, op.expr, a, b);
  const grad = op.grad;
  if (grad) {
    record(y, name, [a, b], (g) => {
      const [ga, gb] = grad(g, a, b, y);
      return [ga && a.requiresGrad ? sumTo(ga, a.shape) : null, gb && b.requiresGrad ? sumTo(gb, b.shape) : null];
    });
  }
  return y;
}

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const sign = (x: Tensor): Tensor => unary('sign', x);
export const addScalar = (x: Tensor, s: number): Tensor => unary('addScalar', x, s);
export const subScalar = (x: Tensor, s: number): Tensor => unary('addScalar', x, -s);
export const mulScalar = (x: Tensor, s: number): Tensor => unary('mulScalar', x, s);
export const divScalar = (x: Tensor, s: number): Tensor => unary('divScalar', x, s);
export const rsubScalar = (s: number, x: Tensor): Tensor => unary('rsubScalar', x, s);
export const powScalar = (x: Tensor, s: number): Tensor => unary('powScalar', x, s);

export const add = (a: Tensor, b: Tensor): Tensor => binary('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binary('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binary('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binary('div', a, b);
export const pow = (a: Tensor, b: Tensor): Tensor => binary('pow', a, b);
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => binary('minimum', a, b);
export const equal = (a: Tensor, b: Tensor): Tensor => binary('equal', a, b);
export const greater = (a: Tensor, b: Tensor): Tensor => binary('greater', a, b);
export const greaterEqual = (a: Tensor, b: Tensor): Tensor => binary('greaterEqual', a, b);
export const less = (a: Tensor, b: Tensor): Tensor => binary('less', a, b);
export const lessEqual = (a: Tensor, b: Tensor): Tensor => binary('lessEqual', a, b);
export const reluBackward = (g: Tensor, x: Tensor): Tensor => binary('reluBackward', g, x);
export const winShare = (a: Tensor, b: Tensor): Tensor => binary('winShare', a, b);

/** Broadcast `x` to `shape`, times `scale` (not recorded; backward passes use it). */
export function expand(x: Tensor, shape: Shape, scale = 1): Tensor {
  checkDtype('expand', 'f32', x);
  broadcastShapes(x.shape, shape, 'expand');
  const out = Tensor.empty(shape);
  mapKernel({
    name: 'expand', expr: 'a * s', type: 'f32', iterShape: shape, s: scale,
    a: { tensor: x, offset: 0, strides: broadcastStrides(x.shape, shape) },
    out: { tensor: out, offset: 0, strides: contiguousStrides(shape) },
  });
  return out;
}

/** Differentiable broadcast (PyTorch's `expand`/`broadcast_to`). */
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  const y = expand(x, shape);
  return record(y, 'broadcastTo', [x], (g) => [sumTo(g, x.shape)]);
}

const addNKernels = declareKernels({
  name: 'addN',
  source: addNSource,
  params: { size: 'u32', count: 'u32' },
  entryPoints: { main: { inputs: { A: 'vec4<f32>', B: 'vec4<f32>', C: 'vec4<f32>', D: 'vec4<f32>' }, outputs: { Out: 'vec4<f32>' } } },
});

/** The most tensors one addN dispatch sums. */
const ADD_N_MAX = 4;

/** The element-wise sum of `tensors` (one shape, f32), added left to right as chained `add`s
 * would (so with the same rounding), in one dispatch per four tensors (TF.js's addN). */
export function addN(tensors: readonly Tensor[]): Tensor {
  if (tensors.length === 0) throw new RangeError('addN: no tensors');
  checkDtype('addN', 'f32', ...tensors);
  const shape = tensors[0].shape;
  for (const t of tensors) {
    if (t.shape.length !== shape.length || t.shape.some((n, d) => n !== shape[d])) {
      throw new RangeError(`addN: ${t.describe()} does not match ${tensors[0].describe()}`);
    }
  }
  // One tensor: a copy, so that the result is always a tensor of its own.
  let sum = tensors.length === 1 ? unaryKernel('mulScalar', unaryOps.mulScalar.expr, tensors[0], 1) : tensors[0];
  for (let i = 1; i < tensors.length; i += ADD_N_MAX - 1) {
    const group = [sum, ...tensors.slice(i, i + ADD_N_MAX - 1)];
    const out = Tensor.empty(shape);
    const size = sizeOf(shape);
    launch(addNKernels.main, {
      label: `addN ${group.length} x ${tensors[0].describe()}`,
      inputs: { A: group[0], B: group[1], C: group[2] ?? group[0], D: group[3] ?? group[0] },
      outputs: { Out: out },
      params: { size, count: group.length },
      workgroups: grid1d(Math.ceil(size / 16), 256), // PER = 4 vec4s an invocation
    });
    if (sum !== tensors[0]) sum.dispose();
    sum = out;
  }
  const inputs = [...tensors];
  return record(sum, 'addN', inputs, (g) => inputs.map(() => g));
}

setGradientArithmetic({ add, addN, onesLike });
