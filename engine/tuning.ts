// Per-adapter choice of kernel variants (tile shapes, and which of an op's kernel designs runs),
// picked by measuring each candidate once rather than by a fixed rule.
//
// An op that has variants calls `choose(op, shape, candidates, fallback, bench)` at every call.
// The answer is, in order: a forced design (`forceVariant`, for tests that must run every
// design), the measured choice for this adapter, op and shape if there is one, else the
// candidate the op's deterministic rule names (`fallback`). While tuning is on
// (`setTuning(true)`; off by default, so tests are deterministic), a shape without a measured
// choice is also queued, with a `bench` that enqueues the op on inputs of that shape; the caller
// then runs `await tunePending()` between steps (measuring needs to wait for the GPU, which an
// op must never do): each candidate runs once to compile and warm up, then `runs` times, and the
// one with the fastest run wins (the fastest, not the median: on a CPU adapter shared with other
// work, that work only ever adds time, and a median of a few runs still picked tiles 1.5x slower
// than the best on a busy machine). Choices are kept per process; on Node,
// engine/tuning-node.ts also keeps them in a file, keyed by the adapter's description.
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
  /** The fastest run's milliseconds per candidate, fastest first. */
  times: { name: string; ms: number }[];
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
  const key = choiceKey(op, shape, candidates);
  const table = chosen[adapterKey()];
  const name = table?.[key];
  const saved = name === undefined ? undefined : candidates.find((c) => c.name === name);
  if (saved) return saved;
  if (tuningOn && candidates.length > 1 && !pending.has(key)) {
    pending.set(key, { op, shape, candidates, makeBench: makeBench as () => Bench<unknown> });
  }
  return candidates[Math.min(Math.max(fallback, 0), candidates.length - 1)];
}

/** Measure every queued shape's candidates and keep the fastest; returns what was measured. */
export async function tunePending(runs = 5): Promise<TuneResult[]> {
  const e = engine();
  const results: TuneResult[] = [];
  const table = (chosen[adapterKey()] ??= {});
  for (const [key, p] of [...pending]) {
    pending.delete(key);
    const times: { name: string; ms: number }[] = [];
    const bench = p.makeBench();
    try {
      for (const c of p.candidates) {
        const once = () => scope(() => bench.run(c.config));
        once(); // compile and warm up
        await e.sync();
        const samples: number[] = [];
        for (let i = 0; i < runs; i++) {
          const t0 = performance.now();
          once();
          await e.sync();
          samples.push(performance.now() - t0);
        }
        times.push({ name: c.name, ms: Math.min(...samples) });
      }
    } finally {
      bench.dispose();
    }
    times.sort((a, b) => a.ms - b.ms);
    table[key] = times[0].name;
    results.push({ op: p.op, shape: p.shape, choice: times[0].name, times });
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
