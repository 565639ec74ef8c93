// One way to run a kernel: bind inputs, then outputs, then (optionally) a uniform block, in
// that binding order, and dispatch. Every op goes through `launch`.
import { engine } from './device.ts';
import type { KernelSpec } from './kernels.ts';
import type { Tensor } from './tensor.ts';
import { shapeString } from './tensor.ts';

export interface Launch {
  kernel: KernelSpec;
  /** Names the op and its shapes in WebGPU error messages. */
  label?: string;
  inputs: Tensor[];
  outputs: Tensor[];
  uniforms?: ArrayBuffer | ArrayBufferView;
  workgroups: [number, number, number];
}

export function launch(l: Launch): void {
  const e = engine();
  const label = l.label ?? `${l.kernel.name} ${l.inputs.map((t) => shapeString(t.shape)).join(' ')}`;
  for (const t of l.outputs) {
    if (l.inputs.some((i) => i.buffer === t.buffer)) throw new Error(`${label}: an output shares storage with an input`);
  }
  const entries: GPUBindGroupEntry[] = [...l.inputs, ...l.outputs].map((t, binding) => ({ binding, resource: { buffer: t.buffer } }));
  if (l.uniforms) entries.push({ binding: entries.length, resource: e.uniform(l.uniforms) });
  if (l.workgroups.some((n) => n === 0)) return; // empty tensors: nothing to do
  // Profiles group dispatches by kernel entry point, element-wise ones by op name.
  const family = l.kernel.name === 'elementwise' ? label.split(' ')[0] : `${l.kernel.name}${l.kernel.entryPoint ? `.${l.kernel.entryPoint}` : ''}`;
  e.dispatch(label, e.kernels.get(l.kernel), entries, l.workgroups, family);
}

const MAX_GROUPS = 65535;

/** Workgroups for `count` invocations of a 1-D kernel of `workgroupSize`, folded into a 2-D
 * grid when needed. Kernels recover the index as `gid.x + gid.y * nwg.x * workgroupSize`. */
export function grid1d(count: number, workgroupSize: number): [number, number, number] {
  const groups = Math.ceil(count / workgroupSize);
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  const y = Math.ceil(groups / MAX_GROUPS);
  return [Math.ceil(groups / y), y, 1];
}
