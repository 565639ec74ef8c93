// Matmul throughput (GFLOP/s) at square and non-square shapes.
import { matmul, scope } from '../engine/index.ts';
import { filled, time } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const shapes: [number, number, number, string][] = opts.quick
    ? [[256, 256, 256, ''], [512, 512, 512, '']]
    : [[256, 256, 256, ''], [512, 512, 512, ''], [1024, 1024, 1024, ''], [4096, 512, 256, ' (non-square)'], [1000, 1000, 1000, ' (odd)']];
  const records: BenchRecord[] = [];
  for (const [M, K, N, note] of shapes) {
    for (const trans of [false, true]) {
      if (trans && M !== 1024 && !opts.quick) continue;
      const a = filled(trans ? [K, M] : [M, K], 1);
      const b = filled([K, N], 2);
      const t = await time(() => scope(() => { matmul(a, b, { transA: trans }); }), opts.quick ? 3 : 5);
      records.push({
        case: `matmul ${M}x${K} @ ${K}x${N}${trans ? ' (A transposed)' : ''}${note}`, op: 'matmul', ...t,
        gflops: (2 * M * N * K) / (t.median_ms * 1e6),
      });
      a.dispose();
      b.dispose();
    }
  }
  return records;
}
