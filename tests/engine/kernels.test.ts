// Kernel declarations (engine/kernels.ts): the generated `struct Params` agrees with WGSL's own
// layout (checked on the GPU, value by value), defines reach the shader with their kinds, and
// every mistake in a declaration or a launch is an error naming the kernel and the name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Tensor, declareKernels, engine, grid1d, launch } from '../../engine/index.ts';
import { throwsWith } from '../helpers.ts';

// Every param type, in an order that needs padding (vec3 and arrays align to 16 bytes, vec2 to
// 8); the shader copies each value's bits to Out in declaration order.
const layout = declareKernels({
  name: 'layoutProbe',
  source: `
#interface
@compute @workgroup_size(1)
fn main() {
  Out[0] = p.a;
  Out[1] = bitcast<u32>(p.b);
  Out[2] = bitcast<u32>(p.c.x);
  Out[3] = bitcast<u32>(p.c.y);
  Out[4] = bitcast<u32>(p.c.z);
  Out[5] = bitcast<u32>(p.d);
  Out[6] = p.e.x;
  Out[7] = p.e.y;
  for (var i = 0u; i < 5u; i++) { Out[8u + i] = p.f[i / 4u][i % 4u]; }
  Out[13] = bitcast<u32>(p.g);
  Out[14] = bitcast<u32>(p.h.x);
  Out[15] = bitcast<u32>(p.h.y);
  Out[16] = bitcast<u32>(p.h.z);
  Out[17] = bitcast<u32>(p.h.w);
  Out[18] = bitcast<u32>(p.k.x);
  Out[19] = bitcast<u32>(p.k.y);
}`,
  params: {
    a: 'u32', b: 'f32', c: 'vec3<f32>', d: 'i32', e: 'vec2<u32>', f: 'array<u32, 5>', g: 'f32', h: 'vec4<i32>', k: 'vec2<f32>',
  },
  entryPoints: { main: { outputs: { Out: 'u32' } } },
});

function bitsOf(values: number[], kinds: string): number[] {
  const v = new DataView(new ArrayBuffer(4));
  return values.map((x, i) => {
    if (kinds[i] === 'f') v.setFloat32(0, x, true);
    else if (kinds[i] === 'i') v.setInt32(0, x, true);
    else v.setUint32(0, x, true);
    return v.getUint32(0, true);
  });
}

test('params are packed by name where WGSL lays them out (u32, i32, f32, vectors, arrays)', async () => {
  const out = Tensor.empty([20], 'u32');
  const params = {
    a: 7, b: 1.5, c: [2.5, -3, 4.25], d: -9, e: [11, 0xffffffff], f: [1, 2, 3, 4, 5], g: -0.125, h: [-1, 2, -3, 4], k: [0.5, 6],
  };
  launch(layout.main, { inputs: {}, outputs: { Out: out }, params, workgroups: [1, 1, 1] });
  const expected = bitsOf([7, 1.5, 2.5, -3, 4.25, -9, 11, 0xffffffff, 1, 2, 3, 4, 5, -0.125, -1, 2, -3, 4, 0.5, 6], 'uffffiuuuuuuufiiiiff');
  assert.equal([...(await out.toArray())], expected);

  // A shorter array leaves the rest zero (not the previous launch's values); a negative u32
  // wraps modulo 2^32 (negative strides rely on it).
  launch(layout.main, { inputs: {}, outputs: { Out: out }, params: { ...params, a: -2, f: [9, 8] }, workgroups: [1, 1, 1] });
  const got = [...(await out.toArray())];
  assert.equal(got.slice(8, 13), [9, 8, 0, 0, 0]);
  assert.is(got[0], 0xfffffffe);
  out.dispose();
});

const defined = declareKernels({
  name: 'defineProbe',
  source: `
#interface
fn f(x: f32) -> f32 {
  return {{EXPR}};
}
@compute @workgroup_size(1)
fn main() {
  Out[0] = select(0u, 1u, FLAG);
  Out[1] = COUNT;
  Out[2] = bitcast<u32>(OFFSET);
  Out[3] = bitcast<u32>(SCALE);
  Out[4] = bitcast<u32>(f(2.0));
  Typed[0] = ELEM(3);
}`,
  defines: { FLAG: 'bool', COUNT: 'u32', OFFSET: 'i32', SCALE: 'f32', ELEM: 'type', EXPR: 'code' },
  entryPoints: { main: { outputs: { Out: 'u32', Typed: 'ELEM' } } },
});

test('defines reach the shader as consts, a type alias (also as a binding type) and an expression', async () => {
  const out = Tensor.empty([5], 'u32');
  const typed = Tensor.empty([1], 'f32');
  const defines = { FLAG: true, COUNT: 42, OFFSET: -5, SCALE: 0.75, ELEM: 'f32', EXPR: 'x * x + 1.0' };
  launch(defined.main, { inputs: {}, outputs: { Out: out, Typed: typed }, defines, workgroups: [1, 1, 1] });
  assert.equal([...(await out.toArray())], bitsOf([1, 42, -5, 0.75, 5], 'uuiff'));
  assert.equal([...(await typed.toArray())], [3]);

  // Same defines: the cached pipeline. Other defines: one new compile, other values.
  const kernels = engine().kernels;
  const before = kernels.compiled;
  launch(defined.main, { inputs: {}, outputs: { Out: out, Typed: typed }, defines, workgroups: [1, 1, 1] });
  assert.is(kernels.compiled, before);
  const typedU = Tensor.empty([1], 'u32');
  launch(defined.main, {
    inputs: {}, outputs: { Out: out, Typed: typedU }, workgroups: [1, 1, 1],
    defines: { FLAG: false, COUNT: 0, OFFSET: 3, SCALE: -2, ELEM: 'u32', EXPR: '-x' },
  });
  assert.is(kernels.compiled, before + 1);
  assert.equal([...(await out.toArray())], bitsOf([0, 0, 3, -2, -2], 'uuiff'));
  assert.equal([...(await typedU.toArray())], [3]);
  for (const t of [out, typed, typedU]) t.dispose();
});

test('launch: a missing, unknown or ill-typed param, define or tensor is an error naming it', () => {
  const out = Tensor.empty([20], 'u32');
  const good = { a: 1, b: 2, c: [1, 2, 3], d: 4, e: [5, 6], f: [7], g: 8, h: [1, 2, 3, 4], k: [1, 2] };
  const run = (args: Record<string, unknown>): void => {
    launch(layout.main, { inputs: {}, outputs: { Out: out }, params: good, workgroups: [1, 1, 1], ...args } as never);
  };
  const { g: _g, ...withoutG } = good;
  throwsWith(() => run({ params: withoutG }), /kernel 'layoutProbe'/, /missing param 'g'/);
  throwsWith(() => run({ params: { ...good, zz: 1 } }), /kernel 'layoutProbe'/, /unknown param 'zz'/);
  throwsWith(() => run({ params: { ...good, a: 'one' } }), /param 'a' must be a number/);
  throwsWith(() => run({ params: { ...good, a: 1.5 } }), /param 'a' must be a 32-bit integer/);
  throwsWith(() => run({ params: { ...good, d: 2 ** 32 } }), /param 'd' must be a 32-bit integer/);
  throwsWith(() => run({ params: { ...good, c: [1, 2] } }), /param 'c' needs 3 numbers, got 2/);
  throwsWith(() => run({ params: { ...good, f: [1, 2, 3, 4, 5, 6] } }), /param 'f' needs at most 5 numbers, got 6/);
  throwsWith(() => run({ params: { ...good, f: 3 } }), /param 'f' needs at most 5 numbers/);
  throwsWith(() => run({ defines: { X: 1 } }), /kernel 'layoutProbe'/, /unknown define 'X' \(the kernel declares none\)/);
  throwsWith(() => run({ outputs: {} }), /kernel 'layoutProbe'/, /missing output 'Out'/);
  throwsWith(() => run({ outputs: { Out: out, Extra: out } }), /unknown output 'Extra'/);
  throwsWith(() => run({ inputs: { In: out } }), /unknown input 'In' \(declared: none\)/);
  // Checked even when there is nothing to dispatch.
  throwsWith(() => run({ params: withoutG, workgroups: [0, 1, 1] }), /missing param 'g'/);

  const typed = Tensor.empty([1]);
  const defines = { FLAG: true, COUNT: 1, OFFSET: 0, SCALE: 1, ELEM: 'f32', EXPR: 'x' };
  const runDefines = (d: Record<string, unknown>): void => {
    launch(defined.main, { inputs: {}, outputs: { Out: out, Typed: typed }, defines: d, workgroups: [1, 1, 1] } as never);
  };
  const { EXPR: _e, ...withoutExpr } = defines;
  throwsWith(() => runDefines(withoutExpr), /kernel 'defineProbe'/, /missing define 'EXPR'/);
  throwsWith(() => runDefines({ ...defines, EXTRA: 1 }), /unknown define 'EXTRA'/);
  throwsWith(() => runDefines({ ...defines, FLAG: 1 }), /define 'FLAG' must be a boolean/);
  throwsWith(() => runDefines({ ...defines, COUNT: -1 }), /define 'COUNT' must be a u32 integer/);
  throwsWith(() => runDefines({ ...defines, OFFSET: 0.5 }), /define 'OFFSET' must be an i32 integer/);
  throwsWith(() => runDefines({ ...defines, SCALE: Infinity }), /define 'SCALE' must be a finite number/);
  throwsWith(() => runDefines({ ...defines, ELEM: 'float' }), /define 'ELEM' must be a WGSL scalar or vector type/);
  throwsWith(() => runDefines({ ...defines, EXPR: '' }), /define 'EXPR' must be a WGSL expression/);
  out.dispose();
  typed.dispose();
});

test('declareKernels: a declaration that disagrees with its shader is an error naming both', () => {
  const src = (body: string) => `#interface\n${body}\n@compute @workgroup_size(1)\nfn main() {}\nfn other() {}`;
  const ep = { main: { outputs: { Out: 'f32' } } };
  throwsWith(() => declareKernels({ name: 'k1', source: '@compute @workgroup_size(1)\nfn main() {}', entryPoints: ep }), /kernel 'k1': the shader needs exactly one line '#interface'/);
  throwsWith(() => declareKernels({ name: 'k2', source: src('#interface'), entryPoints: ep }), /exactly one line '#interface'.*found 2/);
  throwsWith(() => declareKernels({ name: 'k3', source: src('@group(0) @binding(1) var<storage, read> X: array<f32>;'), entryPoints: ep }), /kernel 'k3': the shader declares a binding itself/);
  throwsWith(() => declareKernels({ name: 'k4', source: src('struct Params { a: u32 }'), entryPoints: ep }), /declares struct Params itself/);
  throwsWith(() => declareKernels({ name: 'k5', source: src('const A = {{A}};'), entryPoints: ep }), /kernel 'k5': the shader uses \{\{A\}\}, which is not a declared define/);
  throwsWith(() => declareKernels({ name: 'k6', source: src(''), defines: { E: 'code' }, entryPoints: ep }), /code define 'E' has no \{\{E\}\} in the shader/);
  throwsWith(() => declareKernels({ name: 'k7', source: src('const A = {{N}};'), defines: { N: 'u32' }, entryPoints: ep }), /define 'N' \(kind u32\) is a const in the shader, so write N, not \{\{N\}\}/);
  throwsWith(() => declareKernels({ name: 'k8', source: src(''), params: { q: 'vec5<f32>' as never }, entryPoints: ep }), /kernel 'k8': param 'q' has type 'vec5<f32>'/);
  throwsWith(() => declareKernels({ name: 'k9', source: src(''), entryPoints: { nope: {} } }), /kernel 'k9': entry point 'nope' is not a function in the shader/);
  throwsWith(() => declareKernels({ name: 'k10', source: src(''), entryPoints: { main: { outputs: { Out: 'float' } } } }), /binding 'Out' of main has element type 'float'/);
  throwsWith(() => declareKernels({ name: 'k11', source: src(''), entryPoints: { main: { outputs: { p: 'f32' } } } }), /binding 'p' of main has the name of the uniform block/);
  throwsWith(() => declareKernels({ name: 'k12', source: src(''), entryPoints: { main: { inputs: { R: 'atomic<u32>' } } } }), /input 'R' of main is atomic/);
  throwsWith(() => declareKernels({ name: 'k13', source: src(''), defines: { K: 'float' as never }, entryPoints: ep }), /define 'K' has kind 'float'/);
  throwsWith(
    () => declareKernels({ name: 'k14', source: src(''), entryPoints: { main: { inputs: { X: 'f32' } }, other: { outputs: { X: 'f32' } } } }),
    /kernel 'k14': binding 'X' is binding 1 \(input, f32\) in main but binding 1 \(output, f32\) in other/,
  );
  // The same name, binding and type in two entry points is one declaration, and fine.
  declareKernels({ name: 'k15', source: src(''), entryPoints: { main: { inputs: { X: 'f32' } }, other: { inputs: { X: 'f32' } } } });
});

test('grid1d folds more than 65535 workgroups into a 2-D grid that covers them all', () => {
  assert.equal(grid1d(0, 256), [0, 1, 1]);
  assert.equal(grid1d(1000, 256), [4, 1, 1]);
  assert.equal(grid1d(65535 * 256, 256), [65535, 1, 1]);
  for (const [count, size] of [[65535 * 256 + 1, 256], [1e6, 1], [123456789, 64], [65535 * 65535, 1]]) {
    const [x, y, z] = grid1d(count, size);
    assert.ok(x <= 65535 && y <= 65535 && z === 1, `${count}/${size}: [${x}, ${y}, ${z}] exceeds the limit`);
    assert.ok(x * y * size >= count, `${count}/${size}: [${x}, ${y}] covers ${x * y * size}`);
    assert.ok(x * (y - 1) * size < count, `${count}/${size}: [${x}, ${y}] has a row more than it needs`);
  }
});

test.run();
