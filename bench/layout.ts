// Layout (NCHW vs NHWC): the measurements behind README's "Layout: NCHW" section.
// Per shape, in one run:
//  - our NCHW conv forward, against TF.js's WebGPU conv in NHWC (its native layout) as baseline;
//  - the NCHW <-> NHWC permutes that an NHWC-internal engine would add wherever PyTorch-layout
//    tensors (checkpoints, inputs, anything exchanged with PyTorch) cross its boundary, in GB/s
//    and as a fraction of the conv forward;
//  - for a 1x1 conv, the same matmul kernel in both layouts: NCHW is one batched matmul
//    W[Cout,Cin] x X[n][Cin,HW], NHWC one big matmul X[N*HW,Cin] x W^T, so only layout differs.
// Ours are timed alternately within each case (docs/benchmarks.md); TF.js runs on its own device.
import { conv2d, matmul, permute, scope } from '../engine/index.ts';
import { filled } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';
import { sample, stats } from './timing.ts';
import type { Timing } from './timing.ts';
import { tfjsConv } from './tfjs.ts';

interface LayoutCase { name: string; N: number; Cin: number; H: number; Cout: number; k: number; stride: number }

const CASES: LayoutCase[] = [
  { name: 'r18 64x32x32 k3', N: 32, Cin: 64, H: 32, Cout: 64, k: 3, stride: 1 },
  { name: 'small 16x28x28 k3', N: 256, Cin: 16, H: 28, Cout: 16, k: 3, stride: 1 },
  { name: 'r18 128x16x16 1x1', N: 32, Cin: 128, H: 16, Cout: 128, k: 1, stride: 1 },
];


/** One warm-up each, then `runs` rounds timing each function in turn. */
async function alternate(fns: (() => void)[], runs: number): Promise<Timing[]> {
  for (const f of fns) await sample(f);
  const samples: number[][] = fns.map(() => []);
  for (let i = 0; i < runs; i++) for (const [k, f] of fns.entries()) samples[k].push(await sample(f));
  return samples.map(stats);
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const cases = opts.quick ? [CASES[0], CASES[2]] : CASES;
  const runs = opts.quick ? 3 : 5;
  const records: BenchRecord[] = [];
  const tf = await tfjsConv();
  for (const c of cases) {
    const pad = (c.k - 1) / 2;
    const OH = Math.floor((c.H + 2 * pad - c.k) / c.stride) + 1;
    const flops = 2 * c.N * c.Cout * OH * OH * c.Cin * c.k * c.k;
    const x = filled([c.N, c.Cin, c.H, c.H], 1);
    const w = filled([c.Cout, c.Cin, c.k, c.k], 2);
    const yNhwc = filled([c.N, OH, OH, c.Cout], 3);
    const fns = [
      () => scope(() => { conv2d(x, w, null, { stride: c.stride, padding: pad }); }),
      () => scope(() => { permute(x, [0, 2, 3, 1]); }), // input NCHW -> NHWC
      () => scope(() => { permute(yNhwc, [0, 3, 1, 2]); }), // output NHWC -> NCHW
    ];
    // 1x1: the NHWC form of the same conv on the same matmul kernel.
    const xRows = c.k === 1 ? filled([c.N * c.H * c.H, c.Cin], 4) : null;
    const wMat = c.k === 1 ? w.view([c.Cout, c.Cin]) : null;
    if (xRows && wMat) fns.push(() => scope(() => { matmul(xRows, wMat, { transB: true }); }));
    const [conv, toNhwc, toNchw, nhwcMatmul] = await alternate(fns, runs);

    let baseline: BenchRecord['baseline'];
    if (tf.available) {
      const bt = await tf.time('conv2d_fwd', c, pad, runs);
      baseline = { system: 'tfjs-webgpu (NHWC)', median_ms: bt, gflops: flops / (bt * 1e6), ratio: bt / conv.median_ms };
    } else {
      baseline = { system: 'tfjs-webgpu (NHWC)', skipped: tf.reason };
    }
    const shape = `N=${c.N}, ${c.Cin}->${c.Cout}`;
    records.push({ case: `conv2d_fwd NCHW ${c.name} (${shape})`, op: 'conv2d_fwd_nchw', ...conv, gflops: flops / (conv.median_ms * 1e6), baseline });
    const bytesIn = 8 * x.size;
    const bytesOut = 8 * yNhwc.size;
    records.push({
      case: `permute NCHW->NHWC input ${c.name} (${(100 * toNhwc.median_ms / conv.median_ms).toFixed(0)}% of the conv)`, op: 'permute_to_nhwc', ...toNhwc,
      gbps: bytesIn / (toNhwc.median_ms * 1e6), baseline: { system: 'conv2d_fwd NCHW', median_ms: conv.median_ms, ratio: conv.median_ms / toNhwc.median_ms },
    });
    records.push({
      case: `permute NHWC->NCHW output ${c.name} (${(100 * toNchw.median_ms / conv.median_ms).toFixed(0)}% of the conv)`, op: 'permute_to_nchw', ...toNchw,
      gbps: bytesOut / (toNchw.median_ms * 1e6), baseline: { system: 'conv2d_fwd NCHW', median_ms: conv.median_ms, ratio: conv.median_ms / toNchw.median_ms },
    });
    if (nhwcMatmul) {
      records.push({
        case: `conv1x1 as NHWC matmul [N*HW,Cin]x[Cin,Cout] ${c.name} (${shape})`, op: 'conv1x1_nhwc_matmul', ...nhwcMatmul,
        gflops: flops / (nhwcMatmul.median_ms * 1e6),
        baseline: { system: 'conv2d_fwd NCHW (batched matmul)', median_ms: conv.median_ms, gflops: flops / (conv.median_ms * 1e6), ratio: conv.median_ms / nhwcMatmul.median_ms },
      });
    }
    for (const t of [x, w, yNhwc, xRows, wMat]) t?.dispose();
  }
  tf.dispose();
  return records;
}
