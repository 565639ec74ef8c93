// The unrolled conv weight-gradient kernel (shaders/conv-unrolled-weightgrad.wgsl), with every
// per-tap, per-pixel and per-channel step generated here into named variables. For adapters
// whose subgroups are not 8 wide (but at least 4), SwiftShader above all (see the shader for why).
import source from '../../shaders/conv-unrolled-weightgrad.wgsl';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams, sumWeightGradSlices } from './conv-common.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';
import { fixedSubgroupSize } from '../device.ts';

const kernels = declareKernels({
  name: 'conv2d.unrolled.weightGrad',
  source,
  params: { ...convGeometryParams, rowsPerChunk: 'u32' },
  defines: { R: 'u32', PX: 'u32', WG: 'u32', SETUP: 'code', ACC: 'code', LOOP: 'code', STORE: 'code' },
  entryPoints: { weightGrad: { inputs: { dY: 'f32', X: 'f32' }, outputs: { Out: 'f32' } } },
});

/** R output channels (a multiple of 4, or every channel when there are at most 4) x every tap
 * per invocation, PX output pixels a step, the (n, oh) rows split into `chunks` slices, WG
 * invocations (input channels) a workgroup. */
export interface UnrolledWeightGradTile {
  R: number; PX: number; chunks: number; WG: number;
  /** Where set, the rows are unrolled whole, this many a loop turn, instead of a loop over
   * steps of PX pixels (the code then depends on OW). */
  rowsPerTurn?: number;
  /** Multiply-adds written as fma() calls. */
  fma?: boolean;
  /** With whole rows unrolled: each input value of a row loaded once, not once per step (at
   * stride 1 neighbouring steps' windows overlap by KW - 1 columns). */
  shareColumns?: boolean;
}

/** Invocations worth keeping busy: the (input channel, channel block, chunk) triples the rows
 * are split across until there are about this many (on SwiftShader more chunks mostly added
 * partial slabs to sum: 64 measured faster than 256 at the tiny SSQL step's shapes). */
const TARGET_INVOCATIONS = 64;
/** The fewest (n, oh) rows a chunk sums, so that the partial slabs stay cheap to add. */
const MIN_ROWS_PER_CHUNK = 4;

/** Rows of at most this many steps are unrolled whole (a 28-wide map's 7 steps of 4 compile in
 * about 11 s on SwiftShader; wider rows loop over their steps). */
const MAX_UNROLLED_ROW_STEPS = 8;
/** Output pixels an unrolled loop turn aims at (whole rows: 4 rows of a 4x4 map, 2 of a 7x7). */
const PIXELS_PER_TURN = 16;

/** The tile for a shape: 16 output channels where there are that many, else 8 (4 for windows
 * past 3x3: the accumulators are channel groups x taps vec4s; more channels share each loaded
 * input pixel), 4 pixels a step, split until some 64 invocations run. With `unrollRows` (by
 * default where subgroups are not 8 wide: SwiftShader), rows of up to 8 steps are unrolled
 * whole, as many a loop turn as make about 16 pixels: there every loop turn costs in proportion
 * to the live accumulators (36 vec4s at R = 16), and one 4-pixel step a turn spent most of its
 * time on that at small maps. Measured in Chromium, one dispatch at batch 16 (interleaved):
 * 128->128 4x4 33 -> 13 ms, 64->64 7x7 19 -> 10, 32->32 14x14 1.35x, 16->16 28x28 1.17x. On
 * lavapipe (8-wide subgroups, where tuning rarely picks this kernel) unrolled rows were as fast
 * at 4x4 and 7x7 but slower at 28x28 (4->4: 0.79 -> 1.31 ms, a shape its tuner picks this
 * kernel for), so there the steps stay a loop. Unrolled rows also load each input column of a
 * row once (not once per step) and write the multiply-adds as fma(): in Chromium at the small
 * step's ten weight-gradient shapes (batch 16, GPU ms of one call, interleaved, a loaded
 * machine) that took 0.86 of the time summed over the shapes (fma() alone 0.91, shared columns
 * alone 0.94); 8 output channels a lane instead of 16, or twice the row chunks, were no faster
 * with them, and twice the rows a turn was slower (16->16 28x28: 2.3x the time). Steps as wide
 * as a divisor of the row (7 pixels on 7- and 14-wide rows instead of 4, whose last step ran
 * past the row) took the sum over the shapes from 0.90 to 0.80 of the old kernel's time
 * (9 rounds: 123 -> 111 -> 104 ms sum of medians). */
export function unrolledWeightGradTile(g: ConvGeometry, unrollRows = fixedSubgroupSize() !== 8): UnrolledWeightGradTile {
  const taps = g.kH * g.kW;
  const R = g.Cout <= 4 ? g.Cout : taps > 9 ? 4 : g.Cout >= 16 ? 16 : 8;
  const PX = Math.min(4, g.OW);
  const WG = g.Cin >= 64 ? 64 : g.Cin >= 16 ? 16 : 4;
  const lanes = g.Cin * Math.ceil(g.Cout / R);
  const rows = g.N * g.OH;
  const chunks = Math.max(1, Math.min(Math.ceil(TARGET_INVOCATIONS / lanes), Math.floor(rows / MIN_ROWS_PER_CHUNK)));
  const steps = Math.ceil(g.OW / PX);
  if (!unrollRows || steps > MAX_UNROLLED_ROW_STEPS) return { R, PX, chunks, WG };
  const rowsPerTurn = Math.max(1, Math.min(Math.floor(PIXELS_PER_TURN / (steps * PX)), Math.ceil(rows / chunks)));
  // A step as wide as a divisor of the row (7 on 7- and 14-wide rows), so that no step's
  // multiply-adds run past the row's end.
  const rowPX = g.OW % PX === 0 ? PX : [7, 6, 5].find((d) => g.OW % d === 0) ?? PX;
  return { R, PX: rowPX, chunks, WG, rowsPerTurn, fma: true, shareColumns: true };
}

const XYZW = 'xyzw';

/** The unrolled parts of the shader for one tile, window, stride and output width (the code
 * depends on OW only where the tile unrolls whole rows). */
export function unrolledWeightGradCode(t: UnrolledWeightGradTile, KH: number, KW: number, S: number, OW: number): { SETUP: string; ACC: string; LOOP: string; STORE: string } {
  const { R, PX } = t;
  const RR = t.rowsPerTurn ?? 0;
  const fullRow = RR > 0;
  const steps = fullRow ? Math.ceil(OW / PX) : 1;
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
  if (fullRow) {
    // Whole rows: the column offsets and checks of every step are loop-invariant.
    for (let st = 0; st < steps; st++) {
      for (let c = 0; c < NS; c++) {
        const iw = st * PX * S + c;
        setup.push(`  let cIn${st}_${c} = ${iw}i - i32(p.pad) >= 0 && ${iw}i - i32(p.pad) < i32(p.W);`);
        setup.push(`  let cOff${st}_${c} = select(0u, u32(${iw}i - i32(p.pad)), cIn${st}_${c});`);
      }
      for (let j = 0; j < loads; j++) {
        setup.push(`  let dOk${st}_${j} = ${st * PX}u + px${j} < p.OW;`);
        setup.push(`  let dOff${st}_${j} = gc${j} + min(${st * PX}u + px${j}, p.OW - 1u);`);
      }
    }
  }
  const acc: string[] = [];
  for (let tap = 0; tap < KH * KW; tap++) for (let g = 0; g < groups; g++) acc.push(`  var a${tap}_${g} = vec4<f32>(0.0);`);

  /** One step: PX pixels of one row; `sfx` names its values; the caller defines the offsets. */
  const step = (sfx: string, ind: string, cIn: (c: number) => string, cOff: (c: number) => string, dv: (j: number) => string, rIn: (kh: number) => string, rOff: (kh: number) => string, xChan: string, xName?: (kh: number, c: number) => string): string[] => {
    const body: string[] = [];
    for (let j = 0; j < loads; j++) body.push(`${ind}let dv${sfx}_${j} = ${dv(j)};`);
    for (let px = 0; px < PX; px++) {
      for (let g = 0; g < groups; g++) {
        const ds = [0, 1, 2, 3].map((c) => {
          const m = px * R + 4 * g + c;
          return 4 * g + c < R ? `subgroupBroadcast(dv${sfx}_${m >> 2}, ${m & 3}u)` : '0.0';
        });
        body.push(`${ind}let d${sfx}_${g}_${px} = vec4<f32>(${ds.join(', ')});`);
      }
    }
    if (!xName) {
      for (let kh = 0; kh < KH; kh++) {
        for (let c = 0; c < NS; c++) body.push(`${ind}let x${sfx}_${kh}_${c} = select(0.0, X[${xChan} + ${rOff(kh)} + ${cOff(c)}], ${rIn(kh)} && ${cIn(c)});`);
      }
    }
    const xv = xName ?? ((kh: number, c: number) => `x${sfx}_${kh}_${c}`);
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const tap = kh * KW + kw;
        for (let g = 0; g < groups; g++) {
          for (let px = 0; px < PX; px++) {
            const d = `d${sfx}_${g}_${px}`;
            const x = xv(kh, px * S + kw);
            body.push(t.fma ? `${ind}a${tap}_${g} = fma(${d}, vec4<f32>(${x}), a${tap}_${g});` : `${ind}a${tap}_${g} += ${d} * ${x};`);
          }
        }
      }
    }
    return body;
  };

  const loop: string[] = [];
  if (!fullRow) {
    loop.push('  for (var row = row0; row < row1; row++) {');
    loop.push('    let n = row / p.OH;');
    loop.push('    let oh = row % p.OH;');
    loop.push('    let xChan = (n * p.Cin + ci) * plane;');
    loop.push('    let gRow = n * p.Cout * oplane + oh * p.OW;');
    loop.push('    let ih0 = i32(oh * p.stride) - i32(p.pad);');
    for (let kh = 0; kh < KH; kh++) {
      loop.push(`    let rIn${kh} = ih0 + ${kh} >= 0 && ih0 + ${kh} < i32(p.H);`);
      loop.push(`    let rOff${kh} = select(0u, u32(ih0 + ${kh}) * p.W, rIn${kh});`);
    }
    loop.push('    for (var ow0 = 0u; ow0 < p.OW; ow0 += PX) {');
    loop.push('      let iw0 = i32(ow0 * p.stride) - i32(p.pad);');
    for (let c = 0; c < NS; c++) {
      loop.push(`      let cIn${c} = iw0 + ${c} >= 0 && iw0 + ${c} < i32(p.W);`);
      loop.push(`      let cOff${c} = select(0u, u32(iw0 + ${c}), cIn${c});`);
    }
    for (let j = 0; j < loads; j++) loop.push(`      let pos${j} = ow0 + px${j};`);
    // A pixel past the row contributes nothing: its dY reads as zero (from a clamped address).
    loop.push(...step('', '      ', (c) => `cIn${c}`, (c) => `cOff${c}`, (j) => `select(0.0, dY[gRow + gc${j} + min(pos${j}, p.OW - 1u)], pos${j} < p.OW)`, (kh) => `rIn${kh}`, (kh) => `rOff${kh}`, 'xChan'));
    loop.push('    }');
    loop.push('  }');
  } else {
    // RR rows a turn, each unrolled whole; rows past the chunk read a clamped row, dY zero.
    loop.push(`  for (var row = row0; row < row1; row += ${RR}u) {`);
    for (let k = 0; k < RR; k++) {
      loop.push(`    let rOk${k} = row + ${k}u < row1;`);
      loop.push(`    let rw${k} = min(row + ${k}u, row1 - 1u);`);
      loop.push(`    let n${k} = rw${k} / p.OH;`);
      loop.push(`    let oh${k} = rw${k} % p.OH;`);
      loop.push(`    let xChan${k} = (n${k} * p.Cin + ci) * plane;`);
      loop.push(`    let gRow${k} = n${k} * p.Cout * oplane + oh${k} * p.OW;`);
      loop.push(`    let ih${k} = i32(oh${k} * p.stride) - i32(p.pad);`);
      for (let kh = 0; kh < KH; kh++) {
        loop.push(`    let rIn${k}_${kh} = ih${k} + ${kh} >= 0 && ih${k} + ${kh} < i32(p.H);`);
        loop.push(`    let rOff${k}_${kh} = select(0u, u32(ih${k} + ${kh}) * p.W, rIn${k}_${kh});`);
      }
      // Each column of the row a step reads, by its first (step, column) name.
      const firstOf = new Map<number, [number, number]>();
      if (t.shareColumns) {
        // Only the columns some multiply-add reads (a strided 1x1 window skips every other one).
        const used = new Set<number>();
        for (let px = 0; px < PX; px++) for (let kw = 0; kw < KW; kw++) used.add(px * S + kw);
        for (let st = 0; st < steps; st++) for (const c of used) if (!firstOf.has(st * PX * S + c)) firstOf.set(st * PX * S + c, [st, c]);
        for (let kh = 0; kh < KH; kh++) {
          for (const [iw, [st, c]] of firstOf) loop.push(`    let x${k}_${kh}_${iw} = select(0.0, X[xChan${k} + rOff${k}_${kh} + cOff${st}_${c}], rIn${k}_${kh} && cIn${st}_${c});`);
        }
      }
      for (let st = 0; st < steps; st++) {
        const xName = t.shareColumns ? (kh: number, c: number) => `x${k}_${kh}_${st * PX * S + c}` : undefined;
        loop.push(...step(`${k}_${st}`, '    ', (c) => `cIn${st}_${c}`, (c) => `cOff${st}_${c}`, (j) => `select(0.0, dY[gRow${k} + dOff${st}_${j}], dOk${st}_${j} && rOk${k})`, (kh) => `rIn${k}_${kh}`, (kh) => `rOff${k}_${kh}`, `xChan${k}`, xName));
      }
    }
    loop.push('  }');
  }
  const store: string[] = [];
  for (let r = 0; r < R; r++) {
    store.push(`  if (co0 + ${r}u < p.Cout) {`);
    store.push(`    let o${r} = outBase + (co0 + ${r}u) * p.Cin * taps;`);
    for (let tap = 0; tap < KH * KW; tap++) store.push(`    Out[o${r} + ${tap}u] = a${tap}_${r >> 2}.${XYZW[r & 3]};`);
    store.push('  }');
  }
  return { SETUP: setup.join('\n'), ACC: acc.join('\n'), LOOP: loop.join('\n'), STORE: store.join('\n') };
}

/** dL/dW with the unrolled kernel. */
export function unrolledWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: UnrolledWeightGradTile = unrolledWeightGradTile(g)): Tensor {
  const rows = g.N * g.OH;
  const rowsPerChunk = Math.ceil(rows / tile.chunks);
  const chunks = Math.ceil(rows / rowsPerChunk);
  const shape = [g.Cout, g.Cin, g.kH, g.kW];
  const out = Tensor.empty(chunks === 1 ? shape : [chunks, ...shape]);
  launch(kernels.weightGrad, {
    label: `conv2d.unrolled.weightGrad ${gradOut.describe()}, ${x.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad} tile ${tile.R}x${tile.PX}/${chunks}${tile.rowsPerTurn ? ` rows${tile.rowsPerTurn}` : ''}${tile.fma ? ' fma' : ''}${tile.shareColumns ? ' shared' : ''}`,
    inputs: { dY: gradOut, X: x },
    outputs: { Out: out },
    params: { ...g, rowsPerChunk },
    defines: { R: tile.R, PX: tile.PX, WG: tile.WG, ...unrolledWeightGradCode(tile, g.kH, g.kW, g.stride, g.OW) },
    workgroups: [Math.ceil(g.Cin / tile.WG), Math.ceil(g.Cout / tile.R), chunks],
  });
  return sumWeightGradSlices(out, chunks);
}
