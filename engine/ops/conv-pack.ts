// The weight repack the subgroup and unrolled conv kernels read (shaders/conv-pack.wgsl): W
// [Cout, Cin, kH, kW] (or, flipped, the [Cin, Cout, kH, kW] weight of the conv whose stride-1
// input gradient is computed, rotated by 180 degrees) as [Cin, kH*kW, CP], CP = Cout rounded up to
// a multiple of 4, so that a vec4 load reads four output channels of one tap.
import packSource from '../../shaders/conv-pack.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';

const packKernels = declareKernels({
  name: 'conv2d.pack',
  source: packSource,
  params: { Cin: 'u32', Cout: 'u32', KK: 'u32', CP: 'u32' },
  defines: { FLIPPED: 'bool', WG_X: 'u32' },
  entryPoints: { main: { inputs: { W: 'f32' }, outputs: { Wp: 'vec4<f32>' } } },
});

/** The packed weight of `g` and its padded channel count CP (dispose the tensor). A weight
 * packs once however many convs read it until it changes (Tensor.derived): a training step reads
 * each weight in two views' passes, forward and backward. */
export function packWeights(weight: Tensor, g: ConvGeometry, flipped: boolean): { packed: Tensor; CP: number } {
  const KK = g.kH * g.kW;
  const CP = Math.ceil(g.Cout / 4) * 4;
  // Invocations along the output channels' vec4s: as few as cover them, up to 64.
  const wgX = Math.min(64, 4 * Math.ceil(CP / 16));
  const packed = weight.derived(`conv2d.pack ${g.Cin} ${g.Cout} ${KK}${flipped ? ' flipped' : ''}`, () => {
    const p = Tensor.empty([g.Cin * KK * CP]);
    launch(packKernels.main, {
      label: `conv2d.pack ${weight.describe()}${flipped ? ' flipped' : ''}`,
      inputs: { W: weight },
      outputs: { Wp: p },
      params: { Cin: g.Cin, Cout: g.Cout, KK, CP },
      defines: { FLIPPED: flipped, WG_X: wgX },
      workgroups: [Math.ceil(CP / 4 / wgX), g.Cin, 1],
    });
    return p;
  });
  return { packed, CP };
}
