// Statistics over seeds for `compare`'s report: mean, sample standard deviation, and the 95%
// confidence interval of a mean from Student's t distribution (for the paired SSQL - SimSiam
// difference: one difference per seed, both methods trained from the same seed). Platform
// independent.

export interface Summary {
  /** Number of values. */
  n: number;
  mean: number;
  /** Sample standard deviation (n - 1 in the denominator); NaN for a single value. */
  sd: number;
}

/** A summary with the 95% interval of its mean (null for fewer than two values). */
export interface Interval extends Summary {
  ci95: [number, number] | null;
}

export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) throw new RangeError('summarize: no values');
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`summarize: ${v} is not a finite number`);
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : NaN;
  return { n, mean, sd };
}

/** Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
  2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
  2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (a table to 30, then the
 * Cornish-Fisher expansion around the normal quantile, within 1e-4 of the exact value). */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`t quantile: degrees of freedom must be a positive integer, got ${df}`);
  if (df <= T975.length) return T975[df - 1];
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}

/** Mean, sd and the 95% t interval of the mean of `values`. */
export function meanInterval(values: readonly number[]): Interval {
  const s = summarize(values);
  if (s.n < 2) return { ...s, ci95: null };
  const half = tQuantile975(s.n - 1) * s.sd / Math.sqrt(s.n);
  return { ...s, ci95: [s.mean - half, s.mean + half] };
}

/** The paired difference b - a, element by element (same seeds in the same order). */
export function pairedDifference(a: readonly number[], b: readonly number[]): Interval {
  if (a.length !== b.length) throw new RangeError(`paired difference: ${a.length} values against ${b.length}`);
  return meanInterval(b.map((v, i) => v - a[i]));
}

/** Half-width (percentage points) of the 95% normal-approximation interval of an accuracy of
 * `percent` measured on `n` test images: the test set's sampling noise. */
export function binomialHalfWidth95(percent: number, n: number): number {
  if (!(n > 0)) throw new RangeError(`binomial interval: test set size must be positive, got ${n}`);
  const p = Math.min(Math.max(percent / 100, 0), 1);
  return 100 * 1.959964 * Math.sqrt((p * (1 - p)) / n);
}
