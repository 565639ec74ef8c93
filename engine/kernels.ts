// Kernel declarations and the pipeline cache.
//
// Each WGSL module in shaders/ is declared once, in TypeScript next to the op that runs it: its
// uniform parameters (name and WGSL type), each entry point's storage buffers (name and element
// type; inputs are read-only, outputs read_write) and the template defines it accepts (name and
// kind). For example (engine/ops/ema.ts):
//
//   const kernels = declareKernels({
//     name: 'ema', source,                                     // source: shaders/ema.wgsl
//     params: { n: 'u32', m: 'f32', oneMinusM: 'f32' },
//     entryPoints: { ema: { inputs: { S: 'vec4<f32>' }, outputs: { T: 'vec4<f32>' } } },
//   });
//   launch(kernels.ema, { inputs: { S: src }, outputs: { T: target },
//     params: { n: target.size, m, oneMinusM: 1 - m }, workgroups: grid1d(...) });
//
// That one declaration generates the shader's interface, written where the .wgsl file has the
// line `#interface` (`engine().kernels.printSource = true` prints the result):
//   - `struct Params`, the params in declared order under WGSL's layout rules, and
//     `var<uniform> p: Params` at binding 0. A param `array<u32, 8>` (up to 8 values: shapes,
//     strides) becomes `array<vec4<u32>, 2>` because uniform arrays have a 16-byte stride; the
//     shader reads element d as `p.name[d / 4][d % 4]`.
//   - Each entry point's storage buffers, `array<type>`, from binding 1 on: inputs, then outputs.
//     Entry points of one module that use the same name must agree on its binding and type.
//   - Defines of kind bool/u32/i32/f32 as `const NAME: type = value;`, of kind 'type' as
//     `alias NAME = type;`. Defines of kind 'code' (a WGSL expression, e.g. an element-wise op's)
//     are the one textual template left: `{{NAME}}` in the shader, replaced verbatim.
// `launch()` packs the param values by name into the uniform block (its layout is computed once
// per declaration) and binds tensors by name; a missing or unknown param, define or tensor is an
// error naming the kernel and the name. Pipelines get explicit bind-group layouts made from the
// same declaration, so shader and bind groups cannot disagree on a binding index.

export type ScalarType = 'u32' | 'i32' | 'f32';
export type ParamType = ScalarType | `vec${2 | 3 | 4}<${ScalarType}>` | `array<${ScalarType}, ${number}>`;
export type DefineKind = 'bool' | 'u32' | 'i32' | 'f32' | 'type' | 'code';

export interface EntryPointDecl {
  /** Name -> WGSL element type of the storage array (f32, vec4<f32>, atomic<u32>, a 'type' define...). */
  inputs?: Readonly<Record<string, string>>;
  outputs?: Readonly<Record<string, string>>;
}

export interface KernelsDecl<P, D, E> {
  /** The module's name, in labels, profiles and error messages (e.g. 'matmul'). */
  name: string;
  /** WGSL text with one `#interface` line. */
  source: string;
  params?: P;
  defines?: D;
  entryPoints: E;
  /** Profiles group this module's dispatches by op (the label's first word) rather than by
   * entry point: for a kernel that serves many ops, such as the element-wise one. */
  profileByOp?: boolean;
}

export type ParamValue<T> = T extends ScalarType ? number : readonly number[];
export type ParamValues<P> = { [K in keyof P]: ParamValue<P[K]> };
export type DefineValue<K> = K extends 'bool' ? boolean : K extends 'type' | 'code' ? string : number;
export type DefineValues<D> = { [K in keyof D]: DefineValue<D[K]> };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VALUE_TYPE = /^(?:f32|i32|u32|vec[234]<(?:f32|i32|u32)>)$/;
const ELEMENT_TYPE = /^(?:f32|i32|u32|vec[234]<(?:f32|i32|u32)>|atomic<(?:u32|i32)>)$/;
const PLACEHOLDER = /\{\{(\w+)\}\}/g;
const INTERFACE_LINE = '#interface';
/** The uniform block's variable in every shader. */
const PARAMS_VAR = 'p';

const SCALAR_KIND = { u32: 0, i32: 1, f32: 2 } as const;

/** One param in the uniform block: `count` scalars from 4-byte word `word`. */
interface Field {
  name: string;
  kind: 0 | 1 | 2;
  word: number;
  count: number;
  /** Vectors need exactly `count` values; arrays at most `count` (the rest are zero). */
  exact: boolean;
  wgsl: string;
}

function parseParamType(type: string): { scalar: ScalarType; count: number; exact: boolean; align: number; size: number; wgsl: string } | null {
  if (type === 'u32' || type === 'i32' || type === 'f32') return { scalar: type, count: 1, exact: true, align: 4, size: 4, wgsl: type };
  let m = /^vec([234])<(u32|i32|f32)>$/.exec(type);
  if (m) {
    const n = Number(m[1]);
    return { scalar: m[2] as ScalarType, count: n, exact: true, align: n === 2 ? 8 : 16, size: 4 * n, wgsl: type };
  }
  m = /^array<(u32|i32|f32), *([1-9][0-9]*)>$/.exec(type);
  if (m) {
    const n = Number(m[2]);
    const vecs = Math.ceil(n / 4);
    return { scalar: m[1] as ScalarType, count: n, exact: false, align: 16, size: 16 * vecs, wgsl: `array<vec4<${m[1]}>, ${vecs}>` };
  }
  return null;
}

const roundUp = (n: number, k: number): number => Math.ceil(n / k) * k;

interface Binding {
  index: number;
  access: 'read' | 'read_write';
  type: string;
}

/** One WGSL module (a .wgsl file) with its declared interface. Internal: reached through the
 * `Kernel`s that `declareKernels` returns. */
export class KernelModule {
  readonly name: string;
  readonly profileByOp: boolean;
  readonly hasParams: boolean;
  private readonly fields: Field[];
  private readonly fieldNames: Set<string>;
  private readonly words: Uint32Array;
  private readonly ints: Int32Array;
  private readonly floats: Float32Array;
  private readonly defineNames: string[];
  private readonly defineKinds: DefineKind[];
  private readonly before: string;
  private readonly after: string;
  private readonly declarations: string;
  private readonly sources = new Map<string, string>();

  constructor(decl: KernelsDecl<Readonly<Record<string, ParamType>>, Readonly<Record<string, DefineKind>>, Readonly<Record<string, EntryPointDecl>>>) {
    this.name = decl.name;
    this.profileByOp = decl.profileByOp ?? false;
    const fail = (msg: string): never => { throw new Error(`kernel '${decl.name}': ${msg}`); };

    // The uniform block.
    this.fields = [];
    let offset = 0;
    let structAlign = 4;
    for (const [name, type] of Object.entries(decl.params ?? {})) {
      if (!IDENTIFIER.test(name)) fail(`param name '${name}' is not a WGSL identifier`);
      const t = parseParamType(type);
      if (!t) fail(`param '${name}' has type '${type}'; expected u32, i32, f32, vecN<T> or array<T, n> (T one of u32, i32, f32)`);
      offset = roundUp(offset, t!.align);
      this.fields.push({ name, kind: SCALAR_KIND[t!.scalar], word: offset / 4, count: t!.count, exact: t!.exact, wgsl: t!.wgsl });
      offset += t!.size;
      structAlign = Math.max(structAlign, t!.align);
    }
    this.fieldNames = new Set(this.fields.map((f) => f.name));
    this.hasParams = this.fields.length > 0;
    const bytes = roundUp(roundUp(offset, structAlign), 16);
    const block = new ArrayBuffer(Math.max(bytes, 16));
    this.words = new Uint32Array(block, 0, bytes / 4);
    this.ints = new Int32Array(block, 0, bytes / 4);
    this.floats = new Float32Array(block, 0, bytes / 4);

    // Defines.
    const defines = Object.entries(decl.defines ?? {});
    this.defineNames = defines.map(([n]) => n);
    this.defineKinds = defines.map(([, k]) => k);
    const typeDefines = new Set<string>();
    for (const [name, kind] of defines) {
      if (!IDENTIFIER.test(name)) fail(`define name '${name}' is not a WGSL identifier`);
      if (!['bool', 'u32', 'i32', 'f32', 'type', 'code'].includes(kind)) fail(`define '${name}' has kind '${kind}'; expected bool, u32, i32, f32, type or code`);
      if (kind === 'type') typeDefines.add(name);
    }

    // The source: one #interface line, no hand-written bindings or Params.
    const lines = decl.source.split('\n');
    const at = lines.flatMap((l, i) => (l.trim() === INTERFACE_LINE ? [i] : []));
    if (at.length !== 1) fail(`the shader needs exactly one line '${INTERFACE_LINE}' where the generated interface goes (found ${at.length})`);
    this.before = lines.slice(0, at[0]).join('\n');
    this.after = lines.slice(at[0] + 1).join('\n');
    const code = decl.source.replace(/\/\/.*$/gm, '');
    if (/@binding\s*\(/.test(code)) fail('the shader declares a binding itself; bindings come from the declaration');
    if (/\bstruct\s+Params\b/.test(code)) fail('the shader declares struct Params itself; it comes from the declaration');
    const used = new Set([...code.matchAll(PLACEHOLDER)].map((m) => m[1]));
    for (const [name, kind] of defines) {
      if (kind === 'code' && !used.has(name)) fail(`code define '${name}' has no {{${name}}} in the shader`);
      if (kind !== 'code' && used.has(name)) fail(`define '${name}' (kind ${kind}) is a const in the shader, so write ${name}, not {{${name}}}`);
    }
    for (const name of used) if (!this.defineNames.includes(name)) fail(`the shader uses {{${name}}}, which is not a declared define`);

    // Bindings of every entry point, each name declared once.
    const bindings = new Map<string, Binding & { entry: string }>();
    const reserved = new Set([PARAMS_VAR, ...this.defineNames]);
    for (const [entry, ep] of Object.entries(decl.entryPoints)) {
      if (!IDENTIFIER.test(entry) || !new RegExp(`\\bfn\\s+${entry}\\s*\\(`).test(code)) fail(`entry point '${entry}' is not a function in the shader`);
      const list: [string, string, Binding['access']][] = [
        ...Object.entries(ep.inputs ?? {}).map(([n, t]): [string, string, Binding['access']] => [n, t, 'read']),
        ...Object.entries(ep.outputs ?? {}).map(([n, t]): [string, string, Binding['access']] => [n, t, 'read_write']),
      ];
      list.forEach(([name, type, access], k) => {
        if (!IDENTIFIER.test(name)) fail(`binding name '${name}' of ${entry} is not a WGSL identifier`);
        if (reserved.has(name)) fail(`binding '${name}' of ${entry} has the name of ${name === PARAMS_VAR ? 'the uniform block' : 'a define'}`);
        if (!ELEMENT_TYPE.test(type) && !typeDefines.has(type)) fail(`binding '${name}' of ${entry} has element type '${type}'; expected a WGSL scalar, vector or atomic type, or a 'type' define`);
        if (access === 'read' && type.startsWith('atomic')) fail(`input '${name}' of ${entry} is atomic; atomics need an output (read_write)`);
        const b = { index: k + 1, access, type, entry };
        const prev = bindings.get(name);
        if (prev && (prev.index !== b.index || prev.access !== b.access || prev.type !== b.type)) {
          fail(`binding '${name}' is ${describeBinding(prev)} in ${prev.entry} but ${describeBinding(b)} in ${entry}; give them different names`);
        }
        bindings.set(name, b);
      });
    }

    const out = ['// ---- generated from the kernel declaration (engine/kernels.ts) ----'];
    if (this.hasParams) {
      out.push('struct Params {', ...this.fields.map((f) => `  ${f.name}: ${f.wgsl},`), '}');
      out.push(`@group(0) @binding(0) var<uniform> ${PARAMS_VAR}: Params;`);
    }
    for (const [name, b] of bindings) {
      out.push(`@group(0) @binding(${b.index}) var<storage, ${b.access}> ${name}: array<${b.type}>;`);
    }
    this.declarations = out.join('\n');
  }

  /** Pack `values` into the uniform block; the returned view is reused by the next call. */
  packParams(values: Readonly<Record<string, unknown>> | undefined, kernel: string): Uint32Array {
    const v = values ?? {};
    const words = this.words;
    words.fill(0);
    for (const f of this.fields) {
      const x = v[f.name];
      if (x === undefined) throw new Error(`${kernel}: missing param '${f.name}'`);
      if (f.count === 1 && f.exact) {
        this.write(f, f.word, x, kernel);
      } else {
        const arr = x as ArrayLike<unknown>;
        if (typeof x !== 'object' || x === null || typeof arr.length !== 'number') throw new TypeError(`${kernel}: param '${f.name}' needs ${f.exact ? '' : 'at most '}${f.count} numbers, got ${String(x)}`);
        if (f.exact ? arr.length !== f.count : arr.length > f.count) {
          throw new RangeError(`${kernel}: param '${f.name}' needs ${f.exact ? '' : 'at most '}${f.count} numbers, got ${arr.length}`);
        }
        for (let i = 0; i < arr.length; i++) this.write(f, f.word + i, arr[i], kernel);
      }
    }
    let given = 0;
    for (const key in v) given++;
    if (given !== this.fields.length) {
      const unknown = Object.keys(v).filter((k) => !this.fieldNames.has(k));
      throw new Error(`${kernel}: unknown param${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}${this.hasParams ? '' : ' (the kernel declares none)'}`);
    }
    return words;
  }

  private write(f: Field, word: number, x: unknown, kernel: string): void {
    if (typeof x !== 'number') throw new TypeError(`${kernel}: param '${f.name}' must be a number, got ${String(x)}`);
    if (f.kind === 2) {
      this.floats[word] = x;
    } else if (!Number.isInteger(x) || x < -0x80000000 || x > 0xffffffff) {
      throw new RangeError(`${kernel}: param '${f.name}' must be a 32-bit integer, got ${x}`);
    } else if (f.kind === 0) {
      this.words[word] = x; // negative values wrap modulo 2^32 (negative strides, see flip)
    } else {
      this.ints[word] = x;
    }
  }

  /** Validate define values; returns the key that names this specialization. */
  defineKey(values: Readonly<Record<string, unknown>> | undefined, kernel: string): string {
    const v = values ?? {};
    let key = '';
    for (let i = 0; i < this.defineNames.length; i++) {
      const name = this.defineNames[i];
      const x = v[name];
      if (x === undefined) throw new Error(`${kernel}: missing define '${name}'`);
      key += `${formatDefine(this.defineKinds[i], x, name, kernel)}\u0000`;
    }
    let given = 0;
    for (const k in v) given++;
    if (given !== this.defineNames.length) {
      const unknown = Object.keys(v).filter((k) => !this.defineNames.includes(k));
      throw new Error(`${kernel}: unknown define${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}${this.defineNames.length ? '' : ' (the kernel declares none)'}`);
    }
    return key;
  }

  /** The WGSL text for a specialization (`key` from defineKey). */
  code(key: string): string {
    let text = this.sources.get(key);
    if (text === undefined) {
      const values = key.split('\u0000');
      const consts: string[] = [];
      const code = new Map<string, string>();
      this.defineNames.forEach((name, i) => {
        const kind = this.defineKinds[i];
        if (kind === 'code') code.set(name, values[i]);
        else if (kind === 'type') consts.push(`alias ${name} = ${values[i]};`);
        else consts.push(`const ${name}: ${kind} = ${values[i]};`);
      });
      const fill = (s: string): string => s.replace(PLACEHOLDER, (whole, name: string) => code.get(name) ?? whole);
      text = [fill(this.before), this.declarations, ...consts, '// ---- end of generated code ----', fill(this.after)].join('\n');
      this.sources.set(key, text);
    }
    return text;
  }
}

function describeBinding(b: Binding): string {
  return `binding ${b.index} (${b.access === 'read' ? 'input' : 'output'}, ${b.type})`;
}

/** A define's WGSL text; throws on a value of the wrong kind. */
function formatDefine(kind: DefineKind, x: unknown, name: string, kernel: string): string {
  const bad = (want: string): never => { throw new TypeError(`${kernel}: define '${name}' must be ${want}, got ${JSON.stringify(x)}`); };
  switch (kind) {
    case 'bool':
      return typeof x === 'boolean' ? String(x) : bad('a boolean');
    case 'u32':
      return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff ? `${x}u` : bad('a u32 integer');
    case 'i32':
      return typeof x === 'number' && Number.isInteger(x) && x >= -0x80000000 && x <= 0x7fffffff ? `${x}i` : bad('an i32 integer');
    case 'f32':
      return typeof x === 'number' && Number.isFinite(x) ? `${x}f` : bad('a finite number');
    case 'type':
      return typeof x === 'string' && VALUE_TYPE.test(x) ? x : bad('a WGSL scalar or vector type');
    case 'code':
      return typeof x === 'string' && x.length > 0 && !x.includes('\u0000') ? x : bad('a WGSL expression');
  }
}

/** One entry point of a declared module: what `launch()` takes. The type parameters carry the
 * declared params, defines, inputs and outputs so that launch arguments are checked by name. */
export class Kernel<P = unknown, D = unknown, I extends string = string, O extends string = string> {
  /** `module.entryPoint`, or the module name for an entry point called `main`. */
  readonly family: string;
  declare readonly types?: { params: P; defines: D; inputs: I; outputs: O };

  constructor(readonly module: KernelModule, readonly entryPoint: string, readonly inputs: readonly I[], readonly outputs: readonly O[]) {
    this.family = entryPoint === 'main' ? module.name : `${module.name}.${entryPoint}`;
  }
}

type Names<R> = R extends Readonly<Record<string, string>> ? keyof R & string : never;

export type KernelsOf<P, D, E extends Readonly<Record<string, EntryPointDecl>>> = {
  readonly [K in keyof E]: Kernel<P, D, Names<E[K]['inputs']>, Names<E[K]['outputs']>>;
};

/** Declare a WGSL module's interface once; returns its entry points, ready for `launch()`. */
export function declareKernels<
  const P extends Readonly<Record<string, ParamType>> = Record<never, ParamType>,
  const D extends Readonly<Record<string, DefineKind>> = Record<never, DefineKind>,
  const E extends Readonly<Record<string, EntryPointDecl>> = Readonly<Record<string, EntryPointDecl>>,
>(decl: KernelsDecl<P, D, E>): KernelsOf<P, D, E> {
  const module = new KernelModule(decl);
  const out: Record<string, Kernel> = {};
  for (const [entry, ep] of Object.entries(decl.entryPoints)) {
    out[entry] = new Kernel(module, entry, Object.keys(ep.inputs ?? {}), Object.keys(ep.outputs ?? {}));
  }
  return Object.freeze(out) as KernelsOf<P, D, E>;
}

interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

/** Compiled pipelines, one per entry point and define values, with their bind-group layouts. */
export class KernelCache {
  /** Print each kernel's WGSL when it is first compiled (debugging aid). */
  printSource = false;
  compiled = 0;
  private readonly pipelines = new Map<Kernel, Map<string, Compiled>>();
  private readonly modules = new Map<KernelModule, Map<string, GPUShaderModule>>();
  private readonly layouts = new Map<Kernel, { pipeline: GPUPipelineLayout; group: GPUBindGroupLayout }>();
  private readonly device: GPUDevice;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  /** The pipeline for `kernel` specialized by `defineKey` (from `KernelModule.defineKey`). */
  get(kernel: Kernel, defineKey: string): Compiled {
    let byKey = this.pipelines.get(kernel);
    if (!byKey) this.pipelines.set(kernel, (byKey = new Map()));
    let c = byKey.get(defineKey);
    if (!c) {
      const layout = this.layout(kernel);
      const label = `${kernel.family}${defineKey ? ` ${defineKey.split('\u0000').join(' ').trim()}` : ''}`;
      c = {
        pipeline: this.device.createComputePipeline({ label, layout: layout.pipeline, compute: { module: this.shaderModule(kernel.module, defineKey), entryPoint: kernel.entryPoint } }),
        layout: layout.group,
      };
      byKey.set(defineKey, c);
      this.compiled++;
    }
    return c;
  }

  private shaderModule(m: KernelModule, defineKey: string): GPUShaderModule {
    let byKey = this.modules.get(m);
    if (!byKey) this.modules.set(m, (byKey = new Map()));
    let sm = byKey.get(defineKey);
    if (!sm) {
      const code = m.code(defineKey);
      if (this.printSource) console.log(`// ---- kernel ${m.name} ${defineKey.split('\u0000').join(' ')}\n${code}`);
      sm = this.device.createShaderModule({ label: m.name, code });
      byKey.set(defineKey, sm);
    }
    return sm;
  }

  private layout(kernel: Kernel): { pipeline: GPUPipelineLayout; group: GPUBindGroupLayout } {
    let l = this.layouts.get(kernel);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      const stage = GPUShaderStage.COMPUTE;
      if (kernel.module.hasParams) entries.push({ binding: 0, visibility: stage, buffer: { type: 'uniform' } });
      kernel.inputs.forEach((_, k) => entries.push({ binding: k + 1, visibility: stage, buffer: { type: 'read-only-storage' } }));
      kernel.outputs.forEach((_, k) => entries.push({ binding: kernel.inputs.length + k + 1, visibility: stage, buffer: { type: 'storage' } }));
      const group = this.device.createBindGroupLayout({ label: kernel.family, entries });
      l = { pipeline: this.device.createPipelineLayout({ label: kernel.family, bindGroupLayouts: [group] }), group };
      this.layouts.set(kernel, l);
    }
    return l;
  }

  /** Compiled pipelines. */
  get size(): number {
    let n = 0;
    for (const m of this.pipelines.values()) n += m.size;
    return n;
  }
}
