// Shared benchmark plumbing (docs/benchmarks.md): warm-up, timed runs to GPU completion,
// median/min/max, the copy-bandwidth baseline of the memory-bound benchmarks, a printed table
// and bench/results/NAME.json.
import { cpus } from 'node:os';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor, engine, scope } from '../engine/index.ts';
import { streamCopy } from './stream-kernel.ts';
import { sample, stats } from './timing.ts';

export interface Baseline {
  system: string;
  median_ms?: number;
  min_ms?: number;
  max_ms?: number;
  runs?: number;
  gflops?: number;
  gbps?: number;
  images_per_s?: number;
  /** Baseline time over ours (above 1: we are faster); for the copy baseline, that is our
   * fraction of the copy's bandwidth. */
  ratio?: number;
  /** Version, threads and the like. */
  detail?: string;
  skipped?: string;
  /** GPU milliseconds per kernel family (the browser's training steps). */
  breakdown_ms?: Record<string, number>;
  /** Dispatches a step per kernel family (the browser's training steps). */
  breakdown_dispatches?: Record<string, number>;
  /** GFLOP/s cases of `browser`: this side's fraction of its own adapter's FMA ceiling. */
  of_ceiling?: number;
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
  /** Memory-bound cases: the streaming kernel moving the same bytes (shaders/stream.wgsl), the
   * most a compute shader reaches on this adapter; `ratio` is our fraction of its bandwidth. */
  ceiling?: Baseline;
  /** GPU milliseconds per kernel family (training benchmarks). */
  breakdown_ms?: Record<string, number>;
  /** Dispatches a step per kernel family (`browser`'s training steps). */
  breakdown_dispatches?: Record<string, number>;
  /** Calls made back to back in each timed sample (times are per call). */
  calls_per_sample?: number;
  /** GFLOP/s cases of `browser`: our fraction of the adapter's FMA ceiling, the best of the
   * 'fma_ceiling' cases in the same run (docs/benchmarks.md#ceilings). */
  of_ceiling?: number;
}

export interface BenchOptions {
  quick: boolean;
  /** Only the cases whose name contains this text (benchmarks that support it). */
  only?: string;
}

export { sample, stats, time } from './timing.ts';
export { filled } from './fill.ts';
export type { Timing } from './timing.ts';

export function machine(): Record<string, string | number> {
  const a = engine().adapter;
  return {
    adapter: a.description, vendor: a.vendor, architecture: a.architecture,
    cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, runtime: 'node',
  };
}

function rate(r: { gflops?: number; gbps?: number; images_per_s?: number }): string {
  if (r.gflops !== undefined) return `${r.gflops.toFixed(2)} GFLOP/s`;
  if (r.gbps !== undefined) return `${r.gbps.toFixed(2)} GB/s`;
  if (r.images_per_s !== undefined) return `${r.images_per_s.toFixed(1)} img/s`;
  return '';
}

function baselineCell(b: Baseline | undefined): string {
  if (!b) return '';
  if (b.skipped) return `${b.system}: skipped (${b.skipped})`;
  const what = rate(b) || (b.median_ms !== undefined ? `${b.median_ms.toFixed(2)} ms` : '');
  return `${b.system} ${what}, ours x${b.ratio === undefined ? '?' : b.ratio < 0.1 ? b.ratio.toFixed(3) : b.ratio.toFixed(2)}`;
}

function fraction(f: number | undefined): string {
  return f === undefined ? '-' : f.toFixed(2);
}

export function printTable(name: string, records: BenchRecord[]): void {
  const ceiling = records.some((r) => r.ceiling);
  const ofCeiling = records.some((r) => r.of_ceiling !== undefined || r.baseline?.of_ceiling !== undefined);
  const rows = records.map((r) => [
    r.case, r.median_ms.toFixed(2), `${r.min_ms.toFixed(2)}-${r.max_ms.toFixed(2)}`, rate(r), baselineCell(r.baseline),
    ...(ceiling ? [baselineCell(r.ceiling)] : []),
    ...(ofCeiling && (r.of_ceiling !== undefined || r.baseline?.of_ceiling !== undefined) ? [`${fraction(r.of_ceiling)} | ${fraction(r.baseline?.of_ceiling)}`] : ofCeiling ? [''] : []),
  ]);
  const header = ['case', 'median ms', 'min-max ms', 'rate', 'baseline', ...(ceiling ? ['ceiling'] : []), ...(ofCeiling ? ['of FMA ceiling (ours | baseline)'] : [])];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(`\n${name}`);
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(r));
}

/**
 * The results file of a run: bench/results/NAME.json only for a run over every case;
 * NAME.quick.json for `--quick`; none for `--only` (a partial record must never stand in for
 * the full one).
 */
export function resultsFileName(name: string, opts: BenchOptions): string | null {
  if (opts.only !== undefined) return null;
  return opts.quick ? `${name}.quick.json` : `${name}.json`;
}

/** Write bench/results/FILE (to a temporary name first, then renamed); returns its path. */
export function writeResults(name: string, file: string, records: BenchRecord[]): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, file);
  const body = JSON.stringify({ bench: name, date: new Date().toISOString(), machine: machine(), records }, null, 2);
  writeFileSync(`${path}.tmp`, body + '\n');
  renameSync(`${path}.tmp`, path);
  return path;
}

// ---- memory-bound kernels against the copy bandwidth ------------------------------------------

/** A memory-bound case: `fn` enqueues the op once; `bytes` is what it must move at least (every
 * input read once plus every output written once, docs/benchmarks.md), whatever passes it makes. */
export interface BandwidthCase {
  name: string;
  op: string;
  bytes: number;
  fn: () => void;
}

/** Below this many bytes a call is repeated back to back within one sample, so that the fixed
 * cost of a submission and its wait does not hide the kernel (the copy is repeated alike). */
const MIN_SAMPLE_BYTES = 8 << 20;
const MAX_CALLS_PER_SAMPLE = 32;
const MAX_COPY_FLOATS = 16 << 20;

/**
 * Times `c.fn`, a copyBufferToBuffer moving the same bytes (a copy of bytes / 2: read plus
 * write = bytes) and the streaming kernel moving them (shaders/stream.wgsl), in turn, after a
 * warm-up of each; records GB/s for all three. `baseline` is the copy, with our fraction of its
 * bandwidth as `ratio`: on lavapipe a memcpy, the ceiling for a kernel that reads and writes each
 * byte once. `ceiling` is the streaming kernel, with our fraction of its bandwidth: what a
 * compute shader reaches on this adapter (on lavapipe well below the memcpy).
 */
export async function versusCopy(c: BandwidthCase, runs: number): Promise<BenchRecord> {
  if (!(c.bytes > 0)) throw new RangeError(`versusCopy: case '${c.name}' moves ${c.bytes} bytes`);
  const calls = Math.min(MAX_CALLS_PER_SAMPLE, Math.max(1, Math.ceil(MIN_SAMPLE_BYTES / c.bytes)));
  // Whole vec4s, so that the streaming kernel moves the same floats as the copy.
  const floats = Math.ceil(c.bytes / 32) * 4;
  // Past the largest buffer a tensor may have, the copy goes through one buffer in pieces.
  const chunk = Math.min(floats, MAX_COPY_FLOATS);
  const src = Tensor.zeros([chunk]);
  const dst = Tensor.zeros([chunk]);
  const e = engine();
  const copyOnce = () => {
    for (let done = 0; done < floats; done += chunk) e.copy(src.buffer, 0, dst.buffer, 0, 4 * Math.min(chunk, floats - done));
  };
  const streamOnce = () => {
    for (let done = 0; done < floats; done += chunk) streamCopy(src, dst, Math.min(chunk, floats - done));
  };
  const repeat = (f: () => void) => () => { for (let i = 0; i < calls; i++) f(); };
  const sides = [c.fn, copyOnce, streamOnce];
  const repeated = sides.map(repeat);
  for (const f of repeated) await sample(f);
  const ms: number[][] = sides.map(() => []);
  // Each timed sample follows an untimed call of the same work, so that no side is timed in the
  // cache state another left (a copy right after a kernel ran up to 2x slower).
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < sides.length; k++) {
      await sample(sides[k]);
      ms[k].push((await sample(repeated[k])) / calls);
    }
  }
  src.dispose();
  dst.dispose();
  const [t, b, s] = ms.map(stats);
  const gbps = c.bytes / (t.median_ms * 1e6);
  const copyGbps = (8 * floats) / (b.median_ms * 1e6);
  const streamGbps = (8 * floats) / (s.median_ms * 1e6);
  return {
    case: c.name, op: c.op, ...t, gbps, calls_per_sample: calls,
    baseline: { system: 'copy', ...b, gbps: copyGbps, ratio: gbps / copyGbps },
    ceiling: { system: 'stream', ...s, gbps: streamGbps, ratio: gbps / streamGbps },
  };
}

/** Runs `versusCopy` on each case in turn (with `only`, on those whose name contains it). */
export async function versusCopyAll(cases: BandwidthCase[], runs: number, only?: string): Promise<BenchRecord[]> {
  const out: BenchRecord[] = [];
  for (const c of cases) if (only === undefined || c.name.includes(only)) out.push(await versusCopy(c, runs));
  return out;
}

/**
 * To time a backward alone: `y` was made by one op with its inputs requiring grad; the returned
 * function calls that op's tape node with `dy` (its gradients are freed by the scope).
 */
export function backwardOf(y: Tensor, dy: Tensor): () => void {
  const node = y.node;
  if (!node) throw new Error(`backwardOf: ${y.describe()} was not recorded (do its inputs require grad?)`);
  return () => scope(() => { node.backward(dy); });
}
