// The unrolled conv weight-gradient kernel (shaders/conv-unrolled-weightgrad.wgsl), with every
// per-tap, per-pixel and per-channel step generated here into named variables. For adapters
// whose subgroups are not 8 wide (but at least 4), SwiftShader above all (see the shader for why).
import source from '../../shaders/conv-unrolled-weightgrad.wgsl';
import { declareKernels } from '../kernels.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { sum } from './reduce.ts';

const kernels = declareKernels({
  name: 'conv2d.unrolled.weightGrad',
  source,
  params: {
    N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
    kH: 'u32', kW: 'u32', stride: 'u32', pad: 'u32', rowsPerChunk: 'u32',
  },
  defines: { R: 'u32', PX: 'u32', WG: 'u32', SETUP: 'code', ACC: 'code', ROW: 'code', BODY: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'f32', X: 'f32' }, outputs: { Out: 'f32' } } },
});

/** R output channels (a multiple of 4, or every channel when there are at most 4) x every tap
 * per invocation, PX output pixels a step, the (n, oh) rows split into `chunks` slices, WG
 * invocations (input channels) a workgroup. */
export interface UnrolledWeightGradTile { R: number; PX: number; chunks: number; WG: number }

/** Invocations worth keeping busy: the (input channel, channel block, chunk) triples the rows
 * are split across until there are about this many (on SwiftShader more chunks mostly added
 * partial slabs to sum: 64 measured faster than 256 at the tiny SSQL step's shapes). */
const TARGET_INVOCATIONS = 64;
/** The fewest (n, oh) rows a chunk sums, so that the partial slabs stay cheap to add. */
const MIN_ROWS_PER_CHUNK = 4;

/** The tile for a shape: 16 output channels where there are that many, else 8 (4 for windows
 * past 3x3: the accumulators are channel groups x taps vec4s; more channels share each loaded
 * input pixel), 4 pixels a step, split until some 64 invocations run. */
export function unrolledWeightGradTile(g: ConvGeometry): UnrolledWeightGradTile {
  const taps = g.kH * g.kW;
  const R = g.Cout <= 4 ? g.Cout : taps > 9 ? 4 : g.Cout >= 16 ? 16 : 8;
  const PX = Math.min(4, g.OW);
  const WG = g.Cin >= 64 ? 64 : g.Cin >= 16 ? 16 : 4;
  const lanes = g.Cin * Math.ceil(g.Cout / R);
  const rows = g.N * g.OH;
  const chunks = Math.max(1, Math.min(Math.ceil(TARGET_INVOCATIONS / lanes), Math.floor(rows / MIN_ROWS_PER_CHUNK)));
  return { R, PX, chunks, WG };
}

const XYZW = 'xyzw';

/** The unrolled parts of the shader for one tile and window. */
export function unrolledWeightGradCode(t: UnrolledWeightGradTile, KH: number, KW: number, S: number): { SETUP: string; ACC: string; ROW: string; BODY: string; STORE: string } {
  const { R, PX } = t;
  const groups = Math.ceil(R / 4);
  const NS = (PX - 1) * S + KW;
  const setup: string[] = [];
  // The R x PX values of dY a step takes (item px * R + r) are the same in every lane; they are
  // loaded 4 to a subgroup load (lane l of every 4 loads item 4j + l into dv{j}) and handed
  // around with subgroupBroadcast. Per lane and j: the channel's plane offset and the pixel.
  const items = R * PX;
  const loads = Math.ceil(items / 4);
  for (let j = 0; j < loads; j++) {
    setup.push(`  let m${j} = min(${4 * j}u + (lane & 3u), ${items - 1}u);`);
    setup.push(`  let gc${j} = min(co0 + m${j} % ${R}u, p.Cout - 1u) * oplane;`);
    setup.push(`  let px${j} = m${j} / ${R}u;`);
  }
  const acc: string[] = [];
  for (let tap = 0; tap < KH * KW; tap++) for (let g = 0; g < groups; g++) acc.push(`  var a${tap}_${g} = vec4<f32>(0.0);`);
  const row: string[] = [];
  for (let kh = 0; kh < KH; kh++) {
    row.push(`    let rIn${kh} = ih0 + ${kh} >= 0 && ih0 + ${kh} < i32(p.H);`);
    row.push(`    let rOff${kh} = select(0u, u32(ih0 + ${kh}) * p.W, rIn${kh});`);
  }
  const body: string[] = [];
  for (let s = 0; s < NS; s++) {
    body.push(`      let cIn${s} = iw0 + ${s} >= 0 && iw0 + ${s} < i32(p.W);`);
    body.push(`      let cOff${s} = select(0u, u32(iw0 + ${s}), cIn${s});`);
  }
  for (let j = 0; j < loads; j++) {
    // A pixel past the row contributes nothing: its dY reads as zero (from a clamped address).
    body.push(`      let pos${j} = ow0 + px${j};`);
    body.push(`      let dv${j} = select(0.0, dY[gRow + gc${j} + min(pos${j}, p.OW - 1u)], pos${j} < p.OW);`);
  }
  for (let px = 0; px < PX; px++) {
    for (let g = 0; g < groups; g++) {
      const ds = [0, 1, 2, 3].map((c) => {
        const m = px * R + 4 * g + c;
        return 4 * g + c < R ? `subgroupBroadcast(dv${m >> 2}, ${m & 3}u)` : '0.0';
      });
      body.push(`      let d${g}_${px} = vec4<f32>(${ds.join(', ')});`);
    }
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let s = 0; s < NS; s++) body.push(`      let x${kh}_${s} = select(0.0, X[xChan + rOff${kh} + cOff${s}], rIn${kh} && cIn${s});`);
  }
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      const tap = kh * KW + kw;
      for (let g = 0; g < groups; g++) {
        for (let px = 0; px < PX; px++) body.push(`      a${tap}_${g} += d${g}_${px} * x${kh}_${px * S + kw};`);
      }
    }
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`  if (co0 + ${r}u < p.Cout) {`);
    store.push(`    let o${r} = outBase + (co0 + ${r}u) * p.Cin * taps;`);
    for (let tap = 0; tap < KH * KW; tap++) store.push(`    Out[o${r} + ${tap}u] = a${tap}_${r >> 2}.${XYZW[r & 3]};`);
    store.push('  }');
  }
  return { SETUP: setup.join('\n'), ACC: acc.join('\n'), ROW: row.join('\n'), BODY: body.join('\n'), STORE: store.join('\n') };
}

/** dL/dW with the unrolled kernel. */
export function unrolledWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: UnrolledWeightGradTile = unrolledWeightGradTile(g)): Tensor {
  const rows = g.N * g.OH;
  const rowsPerChunk = Math.ceil(rows / tile.chunks);
  const chunks = Math.ceil(rows / rowsPerChunk);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  launch(kernels.weightGrad, {
    label: `conv2d.unrolled.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.PX}/${chunks}`,
    inputs: { dY: gradOut, X: x },
    outputs: { Out: out },
    params: { ...g, rowsPerChunk },
    defines: { R: tile.R, PX: tile.PX, WG: tile.WG, ...unrolledWeightGradCode(tile, g.kH, g.kW, g.stride) },
    workgroups: [Math.ceil(g.Cin / tile.WG), Math.ceil(g.Cout / tile.R), chunks],
  });
  if (chunks === 1) return out;
  const total = sum(out, [0]);
  out.dispose();
  return total;
}
