// The unrolled conv kernel (shaders/conv-unrolled-forward.wgsl): the forward conv, and through a
// flipped weight the stride-1 input gradient, with every per-tap and per-channel step generated
// here into named variables. For adapters whose subgroups are not 8 wide (but at least 4),
// SwiftShader above all (see the shader for why).
import source from '../../shaders/conv-unrolled-forward.wgsl';
import { subgroupSizes } from '../device.ts';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams } from './conv-common.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { packWeights } from './conv-pack.ts';

const kernels = declareKernels({
  name: 'conv2d.unrolled',
  source,
  params: { ...convGeometryParams, CP: 'u32' },
  defines: { R: 'u32', TR: 'u32', TC: 'u32', PT: 'u32', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { forward: { inputs: { Wp: 'vec4<f32>', X: 'f32' }, outputs: { Out: 'f32' } } },
});

/** Whether the unrolled kernels can run here: they share loads through subgroupBroadcast from
 * lanes 0-3, so they need subgroups of at least 4 (SwiftShader's are 4, lavapipe's 8). */
export function hasUnrolledSubgroups(): boolean {
  return (subgroupSizes()?.[0] ?? 0) >= 4;
}

/** R output channels (a multiple of 4, or every channel when there are at most 4) x (TR x TC)
 * output pixels per invocation (in vec4s of 4 pixels, the last one padded when TR * TC is not a
 * multiple of 4); a workgroup of 64 invocations is PT pixel tiles (64 when left out) x 64 / PT
 * channel blocks. PT must be at least the subgroup size: the lanes of a subgroup share weights. */
export interface UnrolledTile { R: number; TR: number; TC: number; PT?: number }

/** The widest subgroup the adapter may run, up to the 64 invocations of a workgroup (64 when it
 * does not say). */
export function unrolledMaxSubgroup(): number {
  return Math.min(64, subgroupSizes()?.[1] ?? 64);
}

/** Relative costs on SwiftShader, in multiply-adds (of one lane), measured by taking the loads
 * and broadcasts out of the kernel in turn (8 x 64 x 32 x 32 -> 64, tile 8 x 4 x 4): a load
 * whose address varies by lane (a gather: every input pixel, and the subgroup's weight loads)
 * costs about 16, a broadcast of one weight about 2.3. */
const GATHER_COST = 16;
const BROADCAST_COST = 2.3;

/** Modelled cost of running `g` with tile `t` (multiply-add units): invocations (whole
 * workgroups of 64, partial tiles included) x input channels x the work of one channel; slowed
 * in proportion when there are fewer than 2 workgroups to spread over the CPU's cores. */
function modelledCost(g: ConvGeometry, t: UnrolledTile): number {
  const S = g.stride;
  const inputs = ((t.TR - 1) * S + g.kH) * ((t.TC - 1) * S + g.kW);
  const groups = Math.ceil(t.R / 4);
  const weightLoads = 4 * Math.ceil((g.kH * g.kW * groups) / 4);
  const slots = 4 * Math.ceil((t.TR * t.TC) / 4);
  const perChannel = GATHER_COST * (inputs + weightLoads) + BROADCAST_COST * g.kH * g.kW * 4 * groups + g.kH * g.kW * 4 * groups * slots;
  const tiles = g.N * Math.ceil(g.OH / t.TR) * Math.ceil(g.OW / t.TC);
  const PT = t.PT ?? 64;
  const workgroups = Math.ceil(tiles / PT) * Math.ceil(Math.ceil(g.Cout / t.R) / (64 / PT));
  return workgroups * 64 * g.Cin * perChannel * Math.max(1, 2 / workgroups);
}

/** The tile for a shape: the cheapest by `modelledCost` of 8 or 16 channels (every channel when
 * there are at most 4) x 16, 8 or 4 pixels (narrower where the map is; 4 or 2 whole rows of a
 * 5- to 7-wide map), in workgroups of 64, 32 or 16 pixel tiles (no fewer than the subgroup is
 * wide). Big tiles share each loaded input pixel and weight among more multiply-adds; workgroups
 * of several channel blocks keep big tiles from leaving most of a workgroup idle on small maps.
 * Measured in Chromium (SwiftShader, GPU ms, the small ResNet's batch-16 shapes, interleaved):
 * 128->128 on 4x4 maps 16x1x4 -> 16x4x4 in workgroups of 16 tiles 1.7x faster, 64->128 stride 2
 * the same 1.5x, 64->64 on 7x7 16x4x4 -> 16x4x7 in workgroups of 32 tiles 1.25x. */
export function unrolledTile(g: ConvGeometry, maxSubgroup = unrolledMaxSubgroup()): UnrolledTile {
  const channels = g.Cout <= 4 ? [g.Cout] : g.Cout <= 8 ? [8] : [8, 16];
  const pixels = g.OW >= 4 ? [[4, 4], [2, 4], [1, 4]] : g.OW >= 2 ? [[4, 2], [2, 2]] : [[8, 1], [4, 1]];
  // Whole rows where 4-wide tiles would run past the map's edge (7 wide: 4 x 4 tiles compute
  // 64 pixels for 49).
  if (g.OW > 4 && g.OW < 8 && g.OW % 4 !== 0) pixels.push([4, g.OW], [2, g.OW]);
  let best: UnrolledTile | null = null;
  for (const R of channels) {
    for (const [TR, TC] of pixels) {
      for (const PT of [64, 32, 16].filter((pt) => pt >= maxSubgroup)) {
        const t = { R, TR, TC, PT };
        if (!best || modelledCost(g, t) < modelledCost(g, best)) best = t;
      }
    }
  }
  return best!;
}

const XYZW = 'xyzw';

/** The unrolled parts of the shader for one tile and window. */
export function unrolledCode(t: UnrolledTile, KH: number, KW: number, S: number): { SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { R, TR, TC } = t;
  const C = TR * TC;
  const Q = Math.ceil(C / 4);
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
  // The weights of one input channel, taps x groups vec4s (item tap * groups + g), are loaded
  // 4 to a subgroup load: lane l of every 4 loads item 4j + l into wv{j}.
  const items = KH * KW * groups;
  for (let j = 0; j < Math.ceil(items / 4); j++) {
    setup.push(`  let m${j} = min(${4 * j}u + (lane & 3u), ${items - 1}u);`);
    setup.push(`  let wo${j} = (m${j} / ${groups}u) * cp4 + min(co0 / 4u + m${j} % ${groups}u, cp4 - 1u);`);
  }
  const acc: string[] = [];
  for (let r = 0; r < R; r++) for (let q = 0; q < Q; q++) acc.push(`  var a${r}_${q} = vec4<f32>(0.0);`);
  const body: string[] = [];
  for (let j = 0; j < Math.ceil(items / 4); j++) body.push(`    let wv${j} = Wp[wBase + wo${j}];`);
  for (let i = 0; i < NR; i++) {
    for (let s = 0; s < NS; s++) body.push(`    let x${i}_${s} = select(0.0, X[chan + rOff${i} + cOff${s}], rIn${i} && cIn${s});`);
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = kh * KW + kw;
      for (let q = 0; q < Q; q++) {
        const xs = [0, 1, 2, 3].map((k) => {
          const j = 4 * q + k;
          return j >= C ? '0.0' : `x${Math.floor(j / TC) * S + kh}_${(j % TC) * S + kw}`;
        });
        body.push(`    let b${tap}_${q} = vec4<f32>(${xs.join(', ')});`);
      }
      for (let g = 0; g < groups; g++) {
        const m = tap * groups + g;
        body.push(`    let w${tap}_${g} = subgroupBroadcast(wv${m >> 2}, ${m & 3}u);`);
        for (let c = 0; c < 4 && 4 * g + c < R; c++) {
          for (let q = 0; q < Q; q++) body.push(`    a${4 * g + c}_${q} += w${tap}_${g}.${XYZW[c]} * b${tap}_${q};`);
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
  const PT = tile.PT ?? 64;
  if (64 % PT !== 0 || PT < unrolledMaxSubgroup()) throw new RangeError(`conv2d.unrolled: ${PT} pixel tiles a workgroup must divide 64 and hold whole subgroups`);
  const { packed, CP } = packWeights(weight, g, flipped);
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  const tiles = g.N * Math.ceil(g.OH / tile.TR) * Math.ceil(g.OW / tile.TC);
  launch(kernels.forward, {
    label: `conv2d.unrolled.forward ${x.describe()}, ${weight.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}${flipped ? ' flipped' : ''} tile ${tile.R}x${tile.TR}x${tile.TC}${tile.PT ? ` pt${tile.PT}` : ''}`,
    inputs: { Wp: packed, X: x },
    outputs: { Out: out },
    params: { ...g, CP },
    defines: { R: tile.R, TR: tile.TR, TC: tile.TC, PT, ...unrolledCode(tile, g.kH, g.kW, g.stride) },
    workgroups: [Math.ceil(tiles / PT), Math.ceil(Math.ceil(g.Cout / tile.R) / (64 / PT)), 1],
  });
  packed.dispose();
  return out;
}
