// Several tensors updated by one dispatch (shaders/sgd.wgsl, shaders/ema.wgsl): each tensor is
// a "slot" with its own bindings, and the dispatch's workgroups are laid end to end over the
// slots. WGSL cannot index bindings, so a kernel holds a fixed number of slots (up to 4, as many
// as WebGPU's default 8 storage bindings per stage allow) and callers group tensors to fit.
import { grid1d } from '../launch.ts';

/** vec4s per workgroup of the slot kernels (PER 8 times WG 256 in their shaders). */
const VEC4_PER_GROUP = 8 * 256;
/** The start of a slot that is not used: past every workgroup. */
const UNUSED_SLOT = 0xffffffff;

/** The `counts` (vec4s) and `starts` (first workgroup) params of a dispatch over tensors of
 * `sizes` elements (1 to 4), and its workgroups. */
export function slotLayout(sizes: readonly number[]): { counts: number[]; starts: number[]; workgroups: [number, number, number] } {
  if (sizes.length < 1 || sizes.length > 4) throw new RangeError(`slotLayout: 1 to 4 tensors a dispatch, got ${sizes.length}`);
  const counts = [0, 0, 0, 0];
  const starts = [0, UNUSED_SLOT, UNUSED_SLOT, UNUSED_SLOT];
  let groups = 0;
  sizes.forEach((n, k) => {
    counts[k] = Math.ceil(n / 4);
    starts[k] = groups;
    groups += Math.ceil(counts[k] / VEC4_PER_GROUP);
  });
  return { counts, starts, workgroups: grid1d(groups, 1) };
}

/** `items` in runs of `k`, the last one shorter. */
export function inGroupsOf<T>(items: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += k) out.push(items.slice(i, i + k));
  return out;
}
