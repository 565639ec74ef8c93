// One way to run a kernel: `launch(kernel, args)`, with the kernel from `declareKernels`
// (engine/kernels.ts). It binds the tensors by their declared names (the uniform block at
// binding 0, inputs, then outputs), packs the params by name, and encodes the dispatch.
//
// Poisoning (tests turn `engine().poisonOutputs` on): storage that no kernel, write or copy has
// touched since `Tensor.empty` handed it out is filled with NaN (bits 0x7fc00000) right before
// its first use, as a kernel's output or input or in a readback. An element a kernel should have
// written but did not then reads back as NaN; in-place updates, which write storage that was
// written before, are left alone.
//
// Also here: `fill` (the one kernel the core itself needs: Tensor.full and the poison) and
// `grid1d`, the one answer to WebGPU's limit of 65535 workgroups per grid dimension.
import fillSource from '../shaders/fill.wgsl';
import { engine } from './device.ts';
import { declareKernels } from './kernels.ts';
import type { DefineValues, Kernel, ParamValues } from './kernels.ts';
import { shapeString } from './shapes.ts';
import type { Tensor } from './tensor.ts';

type ParamsArg<P> = [keyof P] extends [never] ? { params?: Readonly<Record<string, never>> } : { params: ParamValues<P> };
type DefinesArg<D> = [keyof D] extends [never] ? { defines?: Readonly<Record<string, never>> } : { defines: DefineValues<D> };

export type LaunchArgs<P, D, I extends string, O extends string> = {
  /** Names the op and its shapes in WebGPU error messages (default: kernel and input shapes). */
  label?: string;
  inputs: Readonly<Record<I, Tensor>>;
  outputs: Readonly<Record<O, Tensor>>;
  workgroups: readonly [number, number, number];
} & ParamsArg<P> & DefinesArg<D>;

export function launch<P, D, I extends string, O extends string>(kernel: Kernel<P, D, I, O>, args: LaunchArgs<P, D, I, O>): void {
  const e = engine();
  const m = kernel.module;
  const what = `kernel '${kernel.family}'`;
  const inputs = bound(what, 'input', kernel.inputs, args.inputs);
  const outputs = bound(what, 'output', kernel.outputs, args.outputs);
  const label = args.label ?? `${kernel.family} ${inputs.map((t) => shapeString(t.shape)).join(' ')}`;
  for (const t of outputs) {
    if (inputs.some((i) => i.buffer === t.buffer)) throw new Error(`${label}: an output shares storage with an input`);
  }
  const defineKey = m.defineKey(args.defines, what);
  if (args.workgroups.some((n) => n === 0)) {
    m.packParams(args.params, what); // still check the arguments
    return; // empty tensors: nothing to do
  }
  if (e.poisonOutputs) {
    for (const t of outputs) poisonIfUnwritten(t);
    for (const t of inputs) poisonIfUnwritten(t);
  }
  for (const t of outputs) t.written();
  // Packed after the poison fills, which launch a kernel of their own.
  const words = m.packParams(args.params, what);
  const entries: GPUBindGroupEntry[] = [];
  if (m.hasParams) entries.push({ binding: 0, resource: e.uniform(words) });
  inputs.forEach((t, k) => entries.push({ binding: k + 1, resource: { buffer: t.buffer } }));
  outputs.forEach((t, k) => entries.push({ binding: inputs.length + k + 1, resource: { buffer: t.buffer } }));
  // Profiles group dispatches by entry point, or by op for modules that serve many ops.
  const family = m.profileByOp ? label.split(' ')[0] : kernel.family;
  const { pipeline, layout } = e.kernels.get(kernel, defineKey);
  e.dispatch(label, pipeline, layout, entries, args.workgroups, family);
}

/** The tensors of `given` in declared order; a missing or unknown name is an error. */
function bound(what: string, role: string, names: readonly string[], given: Readonly<Record<string, Tensor>>): Tensor[] {
  const out: Tensor[] = [];
  for (const name of names) {
    const t = given[name];
    if (t === undefined) throw new Error(`${what}: missing ${role} '${name}'`);
    out.push(t);
  }
  let count = 0;
  for (const _ in given) count++;
  if (count !== names.length) {
    const unknown = Object.keys(given).filter((k) => !names.includes(k));
    throw new Error(`${what}: unknown ${role}${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} (declared: ${names.join(', ') || 'none'})`);
  }
  return out;
}

const MAX_GROUPS = 65535;

/** Workgroups for `count` invocations of a 1-D kernel of `workgroupSize` (1: a workgroup per
 * item, e.g. per channel or row), folded into a 2-D grid past 65535 groups. Kernels recover the
 * index as `gid.x + gid.y * nwg.x * workgroupSize` (or `wid.x + wid.y * nwg.x`). */
export function grid1d(count: number, workgroupSize: number): [number, number, number] {
  const groups = Math.ceil(count / workgroupSize);
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  return [Math.ceil(groups / y), y, 1];
}

const fillKernels = declareKernels({
  name: 'fill',
  source: fillSource,
  params: { size: 'u32', bits: 'u32' },
  entryPoints: { main: { outputs: { Out: 'vec4<u32>' } } },
});

/** Overwrite every element of `t` with the 32-bit pattern `bits`. */
export function fill(t: Tensor, bits: number): void {
  launch(fillKernels.main, {
    label: `fill ${t.describe()}`,
    inputs: {},
    outputs: { Out: t },
    params: { size: t.size, bits: bits >>> 0 },
    workgroups: grid1d(Math.ceil(t.size / 4) + 1, 4 * 256), // vec4s, 4 an invocation (shaders/fill.wgsl)
  });
}

/** A quiet NaN as f32 (and a large value as i32/u32). */
const POISON_BITS = 0x7fc00000;

/** Poison `t`'s storage if nothing has written it yet (only while poisoning is on). */
export function poisonIfUnwritten(t: Tensor): void {
  if (engine().takeUnwritten(t.buffer)) fill(t, POISON_BITS);
}
