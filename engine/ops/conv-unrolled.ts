// The unrolled conv kernel (shaders/conv-unrolled-forward.wgsl): the forward conv, and through a
// flipped weight the stride-1 input gradient, with every per-tap and per-channel step generated
// here into named variables. For adapters without subgroups of 8, SwiftShader above all (see the
// shader for why).
import source from '../../shaders/conv-unrolled-forward.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { packWeights } from './conv-pack.ts';

const kernels = declareKernels({
  name: 'conv2d.unrolled',
  source,
  params: {
    N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
    kH: 'u32', kW: 'u32', stride: 'u32', pad: 'u32', CP: 'u32',
  },
  defines: { R: 'u32', TR: 'u32', TC: 'u32', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { forward: { inputs: { Wp: 'vec4<f32>', X: 'f32' }, outputs: { Out: 'f32' } } },
});

/** R output channels (a multiple of 4, or every channel when there are at most 4) x (TR x TC)
 * output pixels per invocation; TR * TC a multiple of 4. */
export interface UnrolledTile { R: number; TR: number; TC: number }

/** The tile for a shape: 8 channels x 8 pixels (16 vec4 accumulators, like the matmul's 8x8),
 * narrower or fewer where the map or the channels are small. */
export function unrolledTile(g: ConvGeometry): UnrolledTile {
  const R = g.Cout <= 4 ? g.Cout : 8;
  const [TR, TC] = g.OW >= 4 ? [2, 4] : g.OW >= 2 ? [4, 2] : [8, 1];
  return { R, TR, TC };
}

const XYZW = 'xyzw';

/** The unrolled parts of the shader for one tile and window. */
export function unrolledCode(t: UnrolledTile, KH: number, KW: number, S: number): { SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { R, TR, TC } = t;
  const C = TR * TC;
  if (C % 4 !== 0) throw new RangeError(`conv2d.unrolled: tile ${TR}x${TC} needs a multiple of 4 pixels`);
  const groups = Math.ceil(R / 4);
  const NR = (TR - 1) * S + KH;
  const NS = (TC - 1) * S + KW;
  const setup: string[] = [];
  for (let i = 0; i < NR; i++) {
    setup.push(`  let rIn${i} = ih0 + ${i} >= 0 && ih0 + ${i} < i32(p.H);`);
    setup.push(`  let rOff${i} = select(0u, u32(ih0 + ${i}) * p.W, rIn${i});`);
  }
  for (let s = 0; s < NS; s++) {
    setup.push(`  let cIn${s} = iw0 + ${s} >= 0 && iw0 + ${s} < i32(p.W);`);
    setup.push(`  let cOff${s} = select(0u, u32(iw0 + ${s}), cIn${s});`);
  }
  for (let g = 0; g < groups; g++) setup.push(`  let wc${g} = min(co0 / 4u + ${g}u, cp4 - 1u);`);
  const acc: string[] = [];
  for (let r = 0; r < R; r++) for (let q = 0; q < C / 4; q++) acc.push(`  var a${r}_${q} = vec4<f32>(0.0);`);
  const body: string[] = [];
  for (let i = 0; i < NR; i++) {
    for (let s = 0; s < NS; s++) body.push(`    let x${i}_${s} = select(0.0, X[chan + rOff${i} + cOff${s}], rIn${i} && cIn${s});`);
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = kh * KW + kw;
      for (let q = 0; q < C / 4; q++) {
        const xs = [0, 1, 2, 3].map((k) => {
          const j = 4 * q + k;
          return `x${Math.floor(j / TC) * S + kh}_${(j % TC) * S + kw}`;
        });
        body.push(`    let b${tap}_${q} = vec4<f32>(${xs.join(', ')});`);
      }
      for (let g = 0; g < groups; g++) {
        body.push(`    let w${tap}_${g} = Wp[wBase + ${tap}u * cp4 + wc${g}];`);
        for (let c = 0; c < 4 && 4 * g + c < R; c++) {
          for (let q = 0; q < C / 4; q++) body.push(`    a${4 * g + c}_${q} += w${tap}_${g}.${XYZW[c]} * b${tap}_${q};`);
        }
      }
    }
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`  if (co0 + ${r}u < p.Cout) {`);
    store.push(`    let o${r} = outBase + (co0 + ${r}u) * oplane;`);
    for (let j = 0; j < C; j++) {
      const rt = Math.floor(j / TC);
      const tc = j % TC;
      store.push(`    if (oh0 + ${rt}u < p.OH && ow0 + ${tc}u < p.OW) { Out[o${r} + (oh0 + ${rt}u) * p.OW + ow0 + ${tc}u] = a${r}_${j >> 2}.${XYZW[j & 3]}; }`);
    }
    store.push('  }');
  }
  return { SETUP: setup.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** Forward conv (`flipped`: the stride-1 input gradient, `weight` being the [Cin, Cout, kH, kW]
 * weight of the conv whose gradient this is). */
export function unrolledForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, tile: UnrolledTile = unrolledTile(g)): Tensor {
  const { packed, CP } = packWeights(weight, g, flipped);
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  const tiles = g.N * Math.ceil(g.OH / tile.TR) * Math.ceil(g.OW / tile.TC);
  launch(kernels.forward, {
    label: `conv2d.unrolled.forward ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}${flipped ? ' flipped' : ''} tile ${tile.R}x${tile.TR}x${tile.TC}`,
    inputs: { Wp: packed, X: x },
    outputs: { Out: out },
    params: { ...g, CP },
    defines: { ...tile, ...unrolledCode(tile, g.kH, g.kW, g.stride) },
    workgroups: [Math.ceil(tiles / 64), Math.ceil(g.Cout / tile.R), 1],
  });
  packed.dispose();
  return out;
}
