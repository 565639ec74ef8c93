// Per-adapter choice of kernel variants (tile shapes, and which of an op's kernel designs runs),
// picked by measuring the candidates once rather than by a fixed rule alone.
//
// An op that has variants calls `choose(op, shape, candidates, fallback, bench)` at every call.
// The answer is, in order: a forced design (`forceVariant`, for tests that must run every
// design), the measured choice for this adapter, op and shape if there is one, else the
// candidate the op's deterministic rule names (`fallback`). While tuning is on
// (`setTuning(true)`; off by default, so tests are deterministic), a shape without a measured
// choice is also queued, with a `bench` that enqueues the op on inputs of that shape; the caller
// then runs `await tunePending()` between steps (measuring needs to wait for the GPU, which an
// op must never do): each candidate runs once to compile and warm up, then `runs` rounds run
// every candidate once each (A B C A B C ...), so that a burst of other work on a shared CPU
// adapter slows every candidate alike rather than the one measured during it. The decision
// (`pickMeasured`) keeps the rule's pick, itself a measured default, unless another candidate
// beats it clearly: its fastest and its median run both `TUNING_MARGIN` lower; among those that
// do, the one with the lowest geometric mean of the two wins. The fastest run says what a
// candidate does when the shared CPU lets it, the median keeps a single lucky run from deciding,
// and the margin keeps noise from replacing the rule's pick. Choices are kept per process;
// on Node, engine/tuning-node.ts also keeps them in a file, keyed by the adapter's description.
import { engine } from './device.ts';
import { scope } from './scope.ts';

export interface Candidate<T> {
  /** Unique within the op, stable across versions (it is what the cache stores), e.g.
   * 'subgroup 16x2x4'. The word before the first space names the kernel design. */
  name: string;
  config: T;
}

export interface TuneResult {
  op: string;
  shape: string;
  choice: string;
  /** The candidate the op's rule picks (kept unless another measured clearly faster). */
  rule: string;
  /** Per measured candidate, its fastest run (`ms`) and its median run in milliseconds, fastest
   * first. */
  times: { name: string; ms: number; median_ms: number }[];
  /** Candidates left out because their run failed, with the error. */
  failed: { name: string; error: string }[];
}

/** What an op hands over to be measured later: inputs are made only when measuring starts
 * (tensors made inside an op call would belong to the caller's scope). */
export interface Bench<T> {
  /** Enqueue the op once with candidate config `c` (its outputs freed by the caller's scope). */
  run: (c: T) => void;
  /** Free the inputs. */
  dispose: () => void;
}

interface Pending {
  op: string;
  shape: string;
  candidates: readonly Candidate<unknown>[];
  /** The index the op's rule picks. */
  fallback: number;
  makeBench: () => Bench<unknown>;
}

/** A saved set of choices: adapter description -> "op shape #fingerprint" (choiceKey) -> candidate name. */
export type TuningTable = Record<string, Record<string, string>>;

let tuningOn = false;
const chosen: TuningTable = {};
const pending = new Map<string, Pending>();
const forced = new Map<string, string>();

/** Turn measuring of new shapes on or off (off: only saved choices and the rules apply). */
export function setTuning(on: boolean): void {
  tuningOn = on;
  if (!on) pending.clear();
}

export function tuningEnabled(): boolean {
  return tuningOn;
}

/** Make `op` run `variant` wherever it is a candidate: a candidate's full name, or a design
 * (the first word of names: its first candidate); `null` lifts it. For tests of each design. */
export function forceVariant(op: string, variant: string | null): void {
  if (variant === null) forced.delete(op);
  else forced.set(op, variant);
}

/** The table key of a choice: op, shape, and a fingerprint of the candidate names, so that a
 * version that offers other variants for a shape measures it again instead of keeping a choice
 * made among the old ones. */
export function choiceKey(op: string, shape: string, candidates: readonly Candidate<unknown>[]): string {
  // FNV-1a over the names in order.
  let h = 0x811c9dc5;
  for (const ch of candidates.map((c) => c.name).join('|')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${op} ${shape} #${h.toString(16).padStart(8, '0')}`;
}

function adapterKey(): string {
  const a = engine().adapter;
  return `${a.vendor}|${a.architecture}|${a.description}`;
}

/**
 * The candidate to run for `op` at `shape` (a string naming the shape, e.g. 'N32 C64 H32 ...').
 * `fallback` is the index the op's rule picks; `makeBench` makes inputs of this shape and a
 * function that runs the op on them with a given candidate (called by `tunePending`).
 */
export function choose<T>(op: string, shape: string, candidates: readonly Candidate<T>[], fallback: number,
  makeBench: () => Bench<T>): Candidate<T> {
  if (candidates.length === 0) throw new Error(`${op}: no kernel variant fits shape ${shape} on this adapter`);
  const force = forced.get(op);
  if (force !== undefined) {
    const c = candidates.find((x) => x.name === force) ?? candidates.find((x) => x.name.split(' ')[0] === force);
    if (c) return c;
  }
  const rule = Math.min(Math.max(fallback, 0), candidates.length - 1);
  const key = choiceKey(op, shape, candidates);
  const table = chosen[adapterKey()];
  const name = table?.[key];
  const saved = name === undefined ? undefined : candidates.find((c) => c.name === name);
  if (saved) return saved;
  if (tuningOn && candidates.length > 1 && !pending.has(key)) {
    pending.set(key, { op, shape, candidates, fallback: rule, makeBench: makeBench as () => Bench<unknown> });
  }
  return candidates[rule];
}

/** How much faster (in its fastest and its median run) a candidate must measure than the rule's
 * pick to replace it. Measured on the 2-core machine under load (lavapipe, 5 interleaved rounds,
 * a candidate listed twice against itself over 5 shapes, 120 decisions): an identical kernel's
 * fastest run came out 19% or more below its twin's a quarter of the time, and replaced it 22%
 * of the time with a 10% margin on the fastest run and any lower median, 11% with 15% on both;
 * re-tuning 6 shapes 6 times each with all their candidates, 10% and 15% made the same choices. */
export const TUNING_MARGIN = 0.15;

/** Fastest and median of one candidate's runs. */
export interface RunStats {
  min: number;
  median: number;
}

function runStats(samples: readonly number[]): RunStats | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)] };
}

/**
 * Which candidate to keep, given each candidate's run times in ms (an empty list: it was not
 * measured, e.g. its run failed) and `fallback`, the index the op's rule picks. The rule's pick
 * stays unless a candidate clearly beats it: its fastest run and its median run both at least
 * `margin` below the rule's. Of those that do, the one with the lowest geometric mean of its
 * fastest and median runs wins (the first listed of exact ties). Without a measured rule's pick,
 * every measured candidate competes. Returns -1 when none was measured.
 */
export function pickMeasured(samples: readonly (readonly number[])[], fallback: number, margin = TUNING_MARGIN): number {
  const stats = samples.map(runStats);
  const rule = stats[fallback] ?? null;
  const beatsRule = (s: RunStats) => rule === null || (s.min <= (1 - margin) * rule.min && s.median <= (1 - margin) * rule.median);
  const contenders: number[] = [];
  stats.forEach((s, i) => { if (s !== null && i !== fallback && beatsRule(s)) contenders.push(i); });
  if (rule !== null && contenders.length === 0) return fallback;
  if (contenders.length === 0) return -1;
  // Rank by the geometric mean of the fastest and the median run: a fastest run alone let one
  // lucky run pick a tile twice as slow (86 ms fastest, 308 median, against 108 and 212).
  const score = (i: number) => Math.sqrt(stats[i]!.min * stats[i]!.median);
  // Near-equals (within the margin) are not sent to the first listed: replayed on the re-tunes
  // measured for the margin, that cost as much as it saved (ResNet-18 512x4x4 at batch 8, mean
  // chosen/best over the re-tunes: 1.07 against 1.13 in one set, 1.11 against 1.04 and 1.12
  // against 1.00 in another).
  const best = Math.min(...contenders.map(score));
  return contenders.find((i) => score(i) === best)!;
}

/** Measure every queued shape's candidates and keep the choice `pickMeasured` makes; returns
 * what was measured. Each candidate runs once to compile and warm up (a candidate whose run
 * fails then is left out, with a warning), then `runs` rounds each run every candidate once. */
export async function tunePending(runs = 5): Promise<TuneResult[]> {
  const e = engine();
  const results: TuneResult[] = [];
  const table = (chosen[adapterKey()] ??= {});
  for (const [key, p] of [...pending]) {
    pending.delete(key);
    const samples: number[][] = p.candidates.map(() => []);
    const failed: { name: string; error: string }[] = [];
    const bench = p.makeBench();
    try {
      const once = (c: Candidate<unknown>) => scope(() => bench.run(c.config));
      const live: number[] = [];
      let firstError: unknown = null;
      for (const [i, c] of p.candidates.entries()) {
        try {
          once(c);
          await e.sync();
          live.push(i);
        } catch (err) {
          firstError ??= err;
          failed.push({ name: c.name, error: err instanceof Error ? err.message : String(err) });
        }
      }
      // Every candidate failing is not a kernel's fault (a lost device, bad inputs): no choice.
      if (live.length === 0) throw firstError;
      for (const f of failed) console.warn(`kernel tuning: ${p.op} ${p.shape}: left out '${f.name}', whose run failed: ${f.error}`);
      // Rounds over every candidate, so that a burst of other work on the machine slows them alike.
      for (let r = 0; r < Math.max(runs, 1); r++) {
        for (const i of live) {
          const t0 = performance.now();
          once(p.candidates[i]);
          await e.sync();
          samples[i].push(performance.now() - t0);
        }
      }
    } finally {
      bench.dispose();
    }
    const choice = p.candidates[pickMeasured(samples, p.fallback)].name;
    table[key] = choice;
    const times = p.candidates.flatMap((c, i) => {
      const s = runStats(samples[i]);
      return s === null ? [] : [{ name: c.name, ms: s.min, median_ms: s.median }];
    }).sort((a, b) => a.ms - b.ms);
    results.push({ op: p.op, shape: p.shape, choice, rule: p.candidates[p.fallback].name, times, failed });
  }
  return results;
}

/** The measured choices of every adapter seen (to save them). */
export function tuningTable(): TuningTable {
  return JSON.parse(JSON.stringify(chosen)) as TuningTable;
}

/** Add saved choices (a measured choice in this process wins over a loaded one). */
export function loadTuningTable(table: TuningTable): void {
  for (const [adapter, entries] of Object.entries(table)) {
    if (typeof entries !== 'object' || entries === null) continue;
    const mine = (chosen[adapter] ??= {});
    for (const [key, name] of Object.entries(entries)) {
      if (typeof name === 'string' && !(key in mine)) mine[key] = name;
    }
  }
}

/** Forget every choice (tests). */
export function clearTuning(): void {
  for (const k of Object.keys(chosen)) delete chosen[k];
  pending.clear();
}
