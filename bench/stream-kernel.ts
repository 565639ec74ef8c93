// The streaming ceiling of the memory-bound benchmarks (shaders/stream.wgsl): Out = In over
// vec4s, the simplest compute kernel moving a given number of bytes; harness.ts versusCopy times
// it beside each case.
import source from '../shaders/stream.wgsl';
import { declareKernels, grid1d, launch } from '../engine/index.ts';
import type { Tensor } from '../engine/index.ts';

const kernels = declareKernels({
  name: 'stream',
  source,
  params: { n4: 'u32' },
  entryPoints: { main: { inputs: { In: 'vec4<f32>' }, outputs: { Out: 'vec4<f32>' } } },
});

/** vec4s per invocation times the workgroup size (PER and WG in the shader). */
const VEC4_PER_GROUP = 8 * 256;

/** Enqueue dst[0 .. floats) = src[0 .. floats); floats a multiple of 4, within both tensors. */
export function streamCopy(src: Tensor, dst: Tensor, floats: number): void {
  if (floats % 4 !== 0 || floats > src.size || floats > dst.size) {
    throw new RangeError(`streamCopy: ${floats} floats from ${src.describe()} to ${dst.describe()} (a multiple of 4 within both is needed)`);
  }
  launch(kernels.main, {
    label: `stream ${floats}`,
    params: { n4: floats / 4 }, inputs: { In: src }, outputs: { Out: dst },
    workgroups: grid1d(floats / 4, VEC4_PER_GROUP),
  });
}
