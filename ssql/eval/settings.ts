// Bit settings of the PTQ evaluation: 'fp' (full precision) or `${wbit}w${abit}a`.

export interface BitSetting {
  /** Canonical name: 'fp' or `${wbit}w${abit}a`. */
  name: string;
  /** False for 'fp' (quantization off; wbit = abit = 0). */
  quantized: boolean;
  wbit: number;
  abit: number;
}

export const DEFAULT_SETTINGS: readonly string[] = ['fp', '8w8a', '6w6a', '5w5a', '4w4a', '3w3a', '2w4a', '2w2a'];

const MIN_BITS = 2;
const MAX_BITS = 16;

/** The canonical name of a weight/activation bit pair, e.g. '4w4a', '2w4a'. */
export function formatBits(bits: { wbit: number; abit: number }): string {
  return `${bits.wbit}w${bits.abit}a`;
}

/** Parse 'fp' or '<w>w<a>a' (e.g. '4w4a', '2w4a'; case and surrounding spaces ignored). */
export function parseSetting(name: string): BitSetting {
  const s = String(name).trim().toLowerCase();
  if (s === 'fp' || s === 'fp32') return { name: 'fp', quantized: false, wbit: 0, abit: 0 };
  const m = /^(\d+)w(\d+)a$/.exec(s);
  if (!m) {
    throw new RangeError(`bit setting '${name}' is not understood: use 'fp' (full precision) or '<w>w<a>a' with weight and activation bits, e.g. '8w8a', '4w4a', '2w4a'`);
  }
  const wbit = Number(m[1]);
  const abit = Number(m[2]);
  for (const [what, b] of [['weight', wbit], ['activation', abit]] as const) {
    if (b < MIN_BITS || b > MAX_BITS) {
      throw new RangeError(`bit setting '${name}': ${what} bit-width ${b} is out of range (${MIN_BITS}..${MAX_BITS})`);
    }
  }
  return { name: formatBits({ wbit, abit }), quantized: true, wbit, abit };
}

/** Parse a list of settings (an array, or one comma-separated string); duplicates are errors. */
export function parseSettings(names: string | readonly string[]): BitSetting[] {
  const list = typeof names === 'string' ? names.split(',').filter((s) => s.trim() !== '') : [...names];
  if (list.length === 0) throw new RangeError(`no bit settings given (e.g. ${DEFAULT_SETTINGS.join(',')})`);
  const out = list.map(parseSetting);
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.name)) throw new RangeError(`bit setting '${s.name}' is listed twice`);
    seen.add(s.name);
  }
  return out;
}
