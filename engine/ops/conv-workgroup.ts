// The workgroup-memory conv kernel (shaders/conv-workgroup.wgsl): forward, stride-1 input
// gradient (flipped weight) and weight gradient as one tiled implicit GEMM, the design that
// suits GPUs with fast workgroup memory. engine/tuning.ts decides where it runs.
import source from '../../shaders/conv-workgroup.wgsl';
import { engine } from '../device.ts';
import { declareKernels } from '../kernels.ts';
import { convGeometryParams } from './conv-common.ts';
import { launch } from '../launch.ts';
import { Tensor } from '../tensor.ts';
import type { ConvGeometry } from './conv.ts';

const kernels = declareKernels({
  name: 'conv2d.workgroup',
  source,
  params: convGeometryParams,
  defines: { OP: 'u32', WG_M: 'u32', WG_N: 'u32', TM: 'u32', TN: 'u32', TK: 'u32' },
  entryPoints: { main: { inputs: { In0: 'f32', In1: 'f32' }, outputs: { Out: 'f32' } } },
});

/** WG_M x WG_N invocations, each TM x TN outputs; TK values of the sum per workgroup-memory step. */
export interface WorkgroupTile { WG_M: number; WG_N: number; TM: number; TN: number; TK: number }

/** Whether the adapter can run `tile` (invocations and workgroup memory per workgroup). */
export function workgroupTileFits(tile: WorkgroupTile): boolean {
  const l = engine().device.limits;
  const bytes = 4 * tile.TK * (tile.TM * tile.WG_M + tile.TN * tile.WG_N);
  return tile.WG_M * tile.WG_N <= l.maxComputeInvocationsPerWorkgroup && tile.WG_N <= l.maxComputeWorkgroupSizeX
    && tile.WG_M <= l.maxComputeWorkgroupSizeY && bytes <= l.maxComputeWorkgroupStorageSize;
}

const OP = { forward: 0, flipped: 1, weightGrad: 2 } as const;

/** Forward conv (`flipped`: the stride-1 input gradient, `weight` being the [Cin, Cout, kH, kW]
 * weight of the conv whose gradient this is). */
export function workgroupForward(x: Tensor, weight: Tensor, g: ConvGeometry, flipped: boolean, tile: WorkgroupTile): Tensor {
  const out = Tensor.empty([g.N, g.Cout, g.OH, g.OW]);
  run(flipped ? 'flipped' : 'forward', weight, x, out, g, tile, g.Cout, g.N * g.OH * g.OW);
  return out;
}

/** dL/dW. */
export function workgroupWeightGrad(gradOut: Tensor, x: Tensor, g: ConvGeometry, tile: WorkgroupTile): Tensor {
  const out = Tensor.empty([g.Cout, g.Cin, g.kH, g.kW]);
  run('weightGrad', gradOut, x, out, g, tile, g.Cout, g.Cin * g.kH * g.kW);
  return out;
}

function run(op: keyof typeof OP, in0: Tensor, in1: Tensor, out: Tensor, g: ConvGeometry, tile: WorkgroupTile, M: number, N: number): void {
  const groupsN = Math.ceil(N / (tile.TN * tile.WG_N));
  const groupsM = Math.ceil(M / (tile.TM * tile.WG_M));
  if (groupsN > 65535 || groupsM > 65535) throw new RangeError(`conv2d: ${M}x${N} outputs need more than 65535 workgroups of tile ${tile.TM * tile.WG_M}x${tile.TN * tile.WG_N}`);
  launch(kernels.main, {
    label: `conv2d.workgroup.${op} ${in0.describe()}, ${in1.describe()} k${g.kH}x${g.kW} s${g.stride} p${g.pad}`,
    inputs: { In0: in0, In1: in1 },
    outputs: { Out: out },
    params: g,
    defines: { OP: OP[op], ...tile },
    workgroups: [groupsN, groupsM, 1],
  });
}
