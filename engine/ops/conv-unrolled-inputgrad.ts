// The unrolled transposed-conv input-gradient kernel (shaders/conv-unrolled-inputgrad.wgsl), with
// every per-tap, per-phase and per-channel step generated here into named variables: the input
// gradients that are not a flipped forward conv (strided ones), for adapters whose subgroups
// are not 8 wide (but at least 4), SwiftShader above all (see the shader for why).
import source from '../../shaders/conv-unrolled-inputgrad.wgsl';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams } from './conv-common.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { packWeights } from './conv-pack.ts';
import { unrolledMaxSubgroup } from './conv-unrolled.ts';
import { phaseTaps, transposedAccName, transposedConvStore, windowOf } from './conv-subgroup.ts';

const kernels = declareKernels({
  name: 'conv2d.unrolled.inputGrad',
  source,
  params: { ...convGeometryParams, CP: 'u32' },
  defines: { R: 'u32', TR: 'u32', TC: 'u32', PT: 'u32', STRIDE: 'u32', DH0: 'i32', DW0: 'i32', SETUP: 'code', ACC: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { inputGrad: { inputs: { Wp: 'vec4<f32>', dY: 'f32' }, outputs: { Out: 'f32' } } },
});

/** R input channels (a multiple of 4, or every channel when there are at most 4) x (TR x TC)
 * blocks of stride x stride input pixels per invocation; a workgroup of 64 invocations is PT
 * pixel tiles (64 when left out) x 64 / PT channel blocks, PT no less than the subgroup size. */
export interface UnrolledInputGradTile { R: number; TR: number; TC: number; PT?: number }

/** The tile for a shape: 8 blocks (32 pixels at stride 2), fewer at stride 3 (9 pixels a block)
 * and where the map is narrow; with subgroups of 4, 16 channels for windows wider than 1x1, else
 * 8, halved down to 4 while that leaves fewer than 4 workgroups (4 channels with wider
 * subgroups; every channel when there are at most 4); workgroups
 * of as few pixel tiles as the map has (down to 16, and no fewer than the subgroup is wide),
 * the rest of the 64 invocations on further channel blocks. Measured in Chromium (SwiftShader,
 * GPU ms, interleaved, the small ResNet's batch-16 shapes; the old tile 4 channels x 2 x 4 blocks
 * in workgroups of 64 tiles): 64<-128 on 7x7 33 -> 13 (8 channels, 32 tiles), 32<-64 on 14x14
 * 24 -> 14 (16 channels), 16<-32 on 28x28 16 -> 16, the three 1x1 ones 21 -> 15. */
export function unrolledInputGradTile(g: ConvGeometry, maxSubgroup = unrolledMaxSubgroup()): UnrolledInputGradTile {
  const blocksH = Math.ceil(g.H / g.stride);
  const blocksW = Math.ceil(g.W / g.stride);
  const [TR, rowTC] = g.stride >= 3 ? [1, 2] : [2, 4];
  const TC = Math.min(rowTC, blocksW);
  const tiles = g.N * Math.ceil(blocksH / TR) * Math.ceil(blocksW / TC);
  const PT = Math.max(16, maxSubgroup, Math.min(64, 2 ** Math.ceil(Math.log2(tiles))));
  const workgroups = (R: number) => Math.ceil(tiles / PT) * Math.ceil(Math.ceil(g.Cin / R) / (64 / PT));
  // Wide channel tiles pay on SwiftShader (4-lane subgroups) but not on lavapipe (8 lanes; its
  // tuner picks this kernel at some shapes): 16 channels took 32<-64 on 14x14 (batch 64) from 22
  // to 25 ms there, so wider subgroups keep 4.
  let R = maxSubgroup > 4 ? 4 : g.kH * g.kW > 1 ? 16 : 8;
  while (R > 4 && workgroups(R) < 4) R /= 2;
  if (g.Cin <= 4) R = g.Cin;
  else R = Math.min(R, Math.ceil(g.Cin / 4) * 4);
  return { R, TR, TC, PT: Math.min(PT, 64) };
}

/** The unrolled parts of the shader for one tile and geometry, and the dY offsets DH0, DW0 of
 * the window they read (relative to the tile's first block). */
export function unrolledInputGradCode(t: UnrolledInputGradTile, g: ConvGeometry): { DH0: number; DW0: number; SETUP: string; ACC: string; BODY: string; STORE: string } {
  const { R, TR, TC } = t;
  const S = g.stride;
  const KK = g.kH * g.kW;
  const rows = phaseTaps(g.kH, S, g.pad);
  const cols = phaseTaps(g.kW, S, g.pad);
  const rowWindow = windowOf(rows);
  const colWindow = windowOf(cols);
  const NR = TR - 1 + rowWindow.width;
  const NS = TC - 1 + colWindow.width;
  const groups = Math.ceil(R / 4);
  const setup: string[] = [];
  for (let i = 0; i < NR; i++) {
    setup.push(`  let rIn${i} = oh0 + ${i} >= 0 && oh0 + ${i} < i32(p.OH);`);
    setup.push(`  let rOff${i} = select(0u, u32(oh0 + ${i}) * p.OW, rIn${i});`);
  }
  for (let j = 0; j < NS; j++) {
    setup.push(`  let cIn${j} = ow0 + ${j} >= 0 && ow0 + ${j} < i32(p.OW);`);
    setup.push(`  let cOff${j} = select(0u, u32(ow0 + ${j}), cIn${j});`);
  }
  // The weights of one output channel, taps x groups vec4s (item packed tap * groups + q), are
  // loaded 4 to a subgroup load: lane l of every 4 loads item 4j + l into wv{j}.
  const items = KK * groups;
  for (let j = 0; j < Math.ceil(items / 4); j++) {
    setup.push(`  let m${j} = min(${4 * j}u + (lane & 3u), ${items - 1}u);`);
    setup.push(`  let wo${j} = (m${j} / ${groups}u) * cp4 + min(ci0 / 4u + m${j} % ${groups}u, cp4 - 1u);`);
  }
  // One accumulator (4 channels) per channel group, block and phase.
  const acc: string[] = [];
  for (let q = 0; q < groups; q++) {
    for (let bt = 0; bt < TR; bt++) for (let bu = 0; bu < TC; bu++) for (let ph = 0; ph < S; ph++) for (let pw = 0; pw < S; pw++) {
      acc.push(`  var ${transposedAccName(q, bt, bu, ph, pw)} = vec4<f32>(0.0);`);
    }
  }
  const body: string[] = [];
  for (let j = 0; j < Math.ceil(items / 4); j++) body.push(`    let wv${j} = Wp[wBase + wo${j}];`);
  for (let i = 0; i < NR; i++) {
    for (let j = 0; j < NS; j++) body.push(`    let y${i}_${j} = select(0.0, dY[chan + rOff${i} + cOff${j}], rIn${i} && cIn${j});`);
  }
  for (let ph = 0; ph < S; ph++) {
    for (const rt of rows[ph]) {
      for (let pw = 0; pw < S; pw++) {
        for (const ct of cols[pw]) {
          // The packed weight holds tap KK-1-tap (conv-pack.wgsl's FLIPPED order).
          const packedTap = KK - 1 - (rt.tap * g.kW + ct.tap);
          for (let q = 0; q < groups; q++) {
            const w = `w${rt.tap}_${ct.tap}_${q}`;
            const m = packedTap * groups + q;
            body.push(`    let ${w} = subgroupBroadcast(wv${m >> 2}, ${m & 3}u);`);
            for (let bt = 0; bt < TR; bt++) for (let bu = 0; bu < TC; bu++) {
              body.push(`    ${transposedAccName(q, bt, bu, ph, pw)} += ${w} * y${bt + rt.d - rowWindow.first}_${bu + ct.d - colWindow.first};`);
            }
          }
        }
      }
    }
  }
  return { DH0: rowWindow.first, DW0: colWindow.first, SETUP: setup.join('\n'), ACC: acc.join('\n'), BODY: body.join('\n'), STORE: transposedConvStore(R, TR, TC, S) };
}

/** dL/dX with the unrolled transposed-conv kernel (any stride, padding and window). */
export function unrolledInputGrad(gradOut: Tensor, weight: Tensor, g: ConvGeometry, tile: UnrolledInputGradTile = unrolledInputGradTile(g)): Tensor {
  if (tile.R % 4 !== 0 && tile.R < g.Cin) {
    throw new RangeError(`conv2d.unrolled.inputGrad: a tile of ${tile.R} channels must be a multiple of 4 or hold all ${g.Cin} input channels`);
  }
  // Packed as the weight of the conv from dY (Cout channels) to dX (Cin channels).
  const { packed, CP } = packWeights(weight, { ...g, Cin: g.Cout, Cout: g.Cin }, true);
  const out = Tensor.empty([g.N, g.Cin, g.H, g.W]);
  const tiles = g.N * Math.ceil(Math.ceil(g.H / g.stride) / tile.TR) * Math.ceil(Math.ceil(g.W / g.stride) / tile.TC);
  const PT = tile.PT ?? 64;
  if (64 % PT !== 0 || PT < unrolledMaxSubgroup()) throw new RangeError(`conv2d.unrolled.inputGrad: ${PT} pixel tiles a workgroup must divide 64 and hold whole subgroups`);
  launch(kernels.inputGrad, {
    label: `conv2d.unrolled.inputGrad ${gradOut.describe()}, ${weight.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.TR}x${tile.TC} pt${PT}`,
    inputs: { Wp: packed, dY: gradOut },
    outputs: { Out: out },
    params: { ...g, CP },
    defines: { R: tile.R, TR: tile.TR, TC: tile.TC, PT, STRIDE: g.stride, ...unrolledInputGradCode(tile, g) },
    workgroups: [Math.ceil(tiles / PT), Math.ceil(Math.ceil(g.Cin / tile.R) / (64 / PT)), 1],
  });
  packed.dispose();
  return out;
}
