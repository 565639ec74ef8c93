// conv2d forward, input gradient and weight gradient in GFLOP/s at the shapes of a CIFAR
// ResNet-18 (batch 32) and of a small ResNet on 28x28 inputs, with TF.js's WebGPU backend on
// the same adapter as the side-by-side baseline where it is installed.
import { conv2d, conv2dGeometry, conv2dInputGrad, conv2dWeightGrad, scope } from '../engine/index.ts';
import { filled, time } from './harness.ts';
import type { Baseline, BenchOptions, BenchRecord, Timing } from './harness.ts';
import { tfjsConv } from './tfjs.ts';

interface ConvCase { name: string; N: number; Cin: number; H: number; Cout: number; k: number; stride: number }

const RESNET18: ConvCase[] = [
  { name: 'r18 64x32x32 k3', N: 32, Cin: 64, H: 32, Cout: 64, k: 3, stride: 1 },
  { name: 'r18 128x16x16 k3', N: 32, Cin: 128, H: 16, Cout: 128, k: 3, stride: 1 },
  { name: 'r18 256x8x8 k3', N: 32, Cin: 256, H: 8, Cout: 256, k: 3, stride: 1 },
  { name: 'r18 512x4x4 k3', N: 32, Cin: 512, H: 4, Cout: 512, k: 3, stride: 1 },
  { name: 'r18 64->128 k3 s2', N: 32, Cin: 64, H: 32, Cout: 128, k: 3, stride: 2 },
  { name: 'r18 64->128 1x1 s2', N: 32, Cin: 64, H: 32, Cout: 128, k: 1, stride: 2 },
  { name: 'r18 128x16x16 1x1', N: 32, Cin: 128, H: 16, Cout: 128, k: 1, stride: 1 },
];
const SMALL: ConvCase[] = [
  { name: 'small 1->16 28x28 k3 (stem)', N: 256, Cin: 1, H: 28, Cout: 16, k: 3, stride: 1 },
  { name: 'small 16x28x28 k3', N: 256, Cin: 16, H: 28, Cout: 16, k: 3, stride: 1 },
  { name: 'small 32x14x14 k3', N: 256, Cin: 32, H: 14, Cout: 32, k: 3, stride: 1 },
  // The 3x3 stride-2 convs that open the small ResNet's stages 2 and 3.
  { name: 'small 16->32 28x28 k3 s2', N: 256, Cin: 16, H: 28, Cout: 32, k: 3, stride: 2 },
  { name: 'small 32->64 14x14 k3 s2', N: 256, Cin: 32, H: 14, Cout: 64, k: 3, stride: 2 },
];

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const all = opts.quick ? [RESNET18[0], SMALL[1]] : [...RESNET18, ...SMALL];
  const cases = all.filter((c) => opts.only === undefined || c.name.includes(opts.only));
  const runs = opts.quick ? 3 : 5;
  const records: BenchRecord[] = [];
  const tf = await tfjsConv();
  for (const c of cases) {
    const pad = c.k === 3 ? 1 : 0;
    const OH = Math.floor((c.H + 2 * pad - c.k) / c.stride) + 1;
    const flops = 2 * c.N * c.Cout * OH * OH * c.Cin * c.k * c.k;
    const x = filled([c.N, c.Cin, c.H, c.H], 1);
    const w = filled([c.Cout, c.Cin, c.k, c.k], 2);
    const gy = filled([c.N, c.Cout, OH, OH], 3);
    const g = conv2dGeometry(x, w, { stride: c.stride, padding: pad });
    const ours: [string, () => void][] = [
      ['conv2d_fwd', () => scope(() => { conv2d(x, w, null, { stride: c.stride, padding: pad }); })],
      ['conv2d_input_grad', () => scope(() => { conv2dInputGrad(gy, w, g); })],
      ['conv2d_weight_grad', () => scope(() => { conv2dWeightGrad(gy, x, g); })],
    ];
    for (const [op, fn] of ours) {
      // Alternate ours and the baseline so both see the same machine state.
      const t: Timing = await time(fn, runs);
      let baseline: Baseline;
      if (tf.available) {
        const bt = await tf.time(op, c, pad, runs);
        baseline = { system: 'tfjs-webgpu', median_ms: bt, gflops: flops / (bt * 1e6), ratio: bt / t.median_ms };
      } else {
        baseline = { system: 'tfjs-webgpu', skipped: tf.reason };
      }
      records.push({
        case: `${op} ${c.name} (N=${c.N}, ${c.Cin}->${c.Cout}, s${c.stride})`, op, ...t,
        gflops: flops / (t.median_ms * 1e6), baseline,
      });
    }
    for (const t of [x, w, gy]) t.dispose();
  }
  tf.dispose();
  return records;
}
