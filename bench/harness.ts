// Shared benchmark plumbing (../shared/BENCH.md): warm-up, timed runs to GPU completion,
// median/min/max, a printed table and bench/results/NAME.json.
import { cpus } from 'node:os';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, engine } from '../engine/index.ts';

export interface Baseline {
  system: string;
  median_ms?: number;
  gflops?: number;
  gbps?: number;
  ratio?: number;
  skipped?: string;
}

export interface BenchRecord {
  case: string;
  op: string;
  median_ms: number;
  min_ms: number;
  max_ms: number;
  runs: number;
  gflops?: number;
  gbps?: number;
  images_per_s?: number;
  baseline?: Baseline;
  /** GPU milliseconds per kernel family (training benchmarks). */
  breakdown_ms?: Record<string, number>;
}

export interface BenchOptions {
  quick: boolean;
  /** Only the cases whose name contains this text (benchmarks that support it). */
  only?: string;
}

export { time } from './timing.ts';
export type { Timing } from './timing.ts';

/** A tensor of `shape` with seeded pseudo-random values in [-1, 1). */
export function filled(shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; data[i] = (s / 4294967296) * 2 - 1; }
  return Tensor.fromArray(data, shape);
}

export function machine(): Record<string, string | number> {
  const a = engine().adapter;
  return {
    adapter: a.description, vendor: a.vendor, architecture: a.architecture,
    cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, runtime: 'node',
  };
}

export function printTable(name: string, records: BenchRecord[]): void {
  const rows = records.map((r) => [
    r.case, r.median_ms.toFixed(2), `${r.min_ms.toFixed(2)}-${r.max_ms.toFixed(2)}`,
    r.gflops !== undefined ? r.gflops.toFixed(2) : r.gbps !== undefined ? `${r.gbps.toFixed(2)} GB/s` : r.images_per_s !== undefined ? `${r.images_per_s.toFixed(1)} img/s` : '',
    r.baseline ? (r.baseline.skipped ? `${r.baseline.system}: skipped (${r.baseline.skipped})` : `${r.baseline.system} x${r.baseline.ratio?.toFixed(2)}`) : '',
  ]);
  const header = ['case', 'median ms', 'min-max ms', 'GFLOP/s', 'baseline'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n${name}`);
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

/** Write bench/results/NAME.json (to a temporary name first, then renamed). */
export function writeResults(name: string, records: BenchRecord[]): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.json`);
  const body = JSON.stringify({ bench: name, date: new Date().toISOString(), machine: machine(), records }, null, 2);
  writeFileSync(`${path}.tmp`, body + '\n');
  renameSync(`${path}.tmp`, path);
  return path;
}
