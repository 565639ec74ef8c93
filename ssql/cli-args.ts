// A small, strict command-line parser: `--name value`, `--name=value`, boolean `--flag`, and
// positionals. Unknown options are errors that name the closest known one.

export interface OptionSpec {
  type: 'string' | 'number' | 'boolean';
  default?: string | number | boolean;
  help: string;
  /** For strings: the allowed values. */
  choices?: readonly string[];
  /** For `choices`: one line of help per value, listed under the option by `formatHelp`. */
  choiceHelp?: Readonly<Record<string, string>>;
}

export interface ParsedArgs {
  _: string[];
  [option: string]: string | number | boolean | string[] | undefined;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

function closest(name: string, names: string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const n of names) {
    const d = editDistance(name, n);
    if (d < bestD) { bestD = d; best = n; }
  }
  return bestD <= Math.max(2, name.length / 3) ? best : null;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

export function parseArgs(argv: string[], spec: Record<string, OptionSpec>): ParsedArgs {
  const out: ParsedArgs = { _: [] };
  for (const [name, s] of Object.entries(spec)) if (s.default !== undefined) out[name] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) {
      out._.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq >= 0 ? eq : undefined);
    const s = spec[name];
    if (!s) {
      const guess = closest(name, Object.keys(spec));
      throw new UsageError(`unknown option --${name}${guess ? ` (did you mean --${guess}?)` : ''}`);
    }
    if (s.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
    if (s.type === 'number') {
      const v = Number(value);
      if (!Number.isFinite(v)) throw new UsageError(`--${name} must be a number, got '${value}'`);
      out[name] = v;
    } else {
      if (s.choices && !s.choices.includes(value)) throw new UsageError(`--${name} must be one of ${s.choices.join(', ')}; got '${value}'`);
      out[name] = value;
    }
  }
  return out;
}

export function formatHelp(usage: string, summary: string, spec: Record<string, OptionSpec>): string {
  const rows = Object.entries(spec).map(([name, s]) => {
    const flag = `--${name}${s.type === 'boolean' ? '' : ` <${s.choices ? s.choices.join('|') : s.type}>`}`;
    const def = s.default !== undefined && s.type !== 'boolean' ? ` (default: ${s.default})` : '';
    const choices = s.choiceHelp ? (s.choices ?? []).map((c) => [c, s.choiceHelp?.[c] ?? '']) : [];
    return { flag, help: `${s.help}${def}`, choices };
  });
  const width = Math.max(...rows.map((r) => r.flag.length));
  const lines = rows.flatMap((r) => {
    const cw = Math.max(0, ...r.choices.map(([c]) => c.length));
    return [`  ${r.flag.padEnd(width)}  ${r.help}`, ...r.choices.map(([c, h]) => `  ${''.padEnd(width)}    ${c.padEnd(cw)}  ${h}`)];
  });
  return `${usage}\n\n${summary}\n\nOptions:\n${lines.join('\n')}\n`;
}

/** The value of a number option as an integer within [min, max] (UsageError naming the flag). */
export function integerOption(a: ParsedArgs, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = a[name];
  const what = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer of at least ${min}`;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new UsageError(`--${name} must be ${what}, got ${v}`);
  if (v > max) throw new UsageError(`--${name} must be at most ${max}, got ${v}`);
  return v;
}

/** Bounds of a real-valued option: `above`/`atLeast` low end, `below` high end (exclusive). */
export interface RealBounds {
  above?: number;
  atLeast?: number;
  below?: number;
}

/** The value of a number option within the bounds (UsageError naming the flag and the range). */
export function realOption(a: ParsedArgs, name: string, bounds: RealBounds): number {
  const v = a[name];
  const lo = bounds.above !== undefined ? `> ${bounds.above}` : bounds.atLeast !== undefined ? `>= ${bounds.atLeast}` : '';
  const hi = bounds.below !== undefined ? `< ${bounds.below}` : '';
  const range = [lo, hi].filter(Boolean).join(' and ');
  const ok = typeof v === 'number' && Number.isFinite(v) &&
    (bounds.above === undefined || v > bounds.above) &&
    (bounds.atLeast === undefined || v >= bounds.atLeast) &&
    (bounds.below === undefined || v < bounds.below);
  if (!ok) throw new UsageError(`--${name} must be a finite number ${range}, got ${v}`);
  return v as number;
}

/** A bit range option: 'LO-HI' or one number, each an integer within [min, max], LO <= HI. */
export function bitRangeOption(a: ParsedArgs, name: string, min: number, max: number): [number, number] {
  const text = String(a[name]);
  const m = /^(\d+)-(\d+)$/.exec(text) ?? /^(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--${name} must look like ${min}-${max} (a bit range) or one bit-width, got '${text}'`);
  const lo = Number(m[1]);
  const hi = Number(m[2] ?? m[1]);
  if (lo < min || hi > max || lo > hi) throw new UsageError(`--${name} must be within ${min}-${max} with low <= high, got '${text}'`);
  return [lo, hi];
}
