// The comparison report of `ssql compare`: per seed, the linear (and kNN) top-1 of the untrained
// backbone and of each pretrained one at every bit setting; over seeds, mean +- sd per setting,
// the paired SSQL - SimSiam difference and each method's paired gain over the untrained backbone
// with 95% t intervals (./stats.ts). Renders report.md (tables and a plain reading), an SVG
// chart of accuracy against bit-width with error bars, and the report.json object.
// Platform independent: returns strings.
import { binomialHalfWidth95, pairedDifference, summarize } from './stats.ts';
import type { Interval, Summary } from './stats.ts';

/** The column of the backbone that was never trained (same architecture and init seed). */
export const UNTRAINED = 'untrained';

export interface PretrainStats {
  images_per_s: number;
  wall_s: number;
  final_loss: number | null;
}

/** One seed's results: top-1 (%) per model (UNTRAINED and each method) per setting. */
export interface SeedRun {
  seed: number;
  linear: Record<string, Record<string, number>>;
  knn?: Record<string, Record<string, number>>;
  /** Per pretrained method (absent for one loaded from a finished checkpoint of an earlier run). */
  pretrain: Record<string, PretrainStats>;
}

/** Over seeds, per model and setting; differences paired by seed. */
export interface MetricStats {
  models: Record<string, Record<string, Summary>>;
  /** The last method minus the first one (SSQL - SimSiam), per setting. */
  difference: Record<string, Interval>;
  /** Each method minus the untrained backbone of the same seed, per setting. */
  gain: Record<string, Record<string, Interval>>;
}

export interface CompareReport {
  config: Record<string, unknown>;
  adapter: string;
  /** Seconds the run that wrote this report took (a resumed run: only its own part). */
  wall_s: number;
  command?: string;
  /** Bit settings in evaluation order (FP first). */
  settings: string[];
  /** Pretraining methods in column order; the report compares the last with the first. */
  methods: string[];
  /** Test images the accuracies are measured on (for the test set's sampling noise). */
  test_images: number;
  seeds: number[];
  /** Mean linear top-1 (%) over seeds per method, per setting. */
  results: Record<string, Record<string, number>>;
  /** Mean linear top-1 (%) over seeds of the untrained backbone, per setting. */
  untrained: Record<string, number>;
  /** Mean kNN top-1 (%), per model (UNTRAINED included), per setting, when kNN was run. */
  knn?: Record<string, Record<string, number>>;
  stats: { linear: MetricStats; knn?: MetricStats };
  runs: SeedRun[];
}

/** What the report is computed from: the run's description and its per-seed results. */
export type ReportInput = Pick<CompareReport, 'config' | 'adapter' | 'wall_s' | 'command' | 'settings' | 'methods' | 'test_images' | 'runs'>;

function metricStats(runs: SeedRun[], pick: (r: SeedRun) => Record<string, Record<string, number>>, models: string[], methods: string[], settings: string[]): MetricStats {
  const values = (model: string, s: string) => runs.map((r) => {
    const v = pick(r)[model]?.[s];
    if (v === undefined) throw new RangeError(`seed ${r.seed}: no result for ${model} at ${s}`);
    return v;
  });
  const per = <T>(f: (s: string) => T) => Object.fromEntries(settings.map((s) => [s, f(s)]));
  const [first, last] = [methods[0], methods[methods.length - 1]];
  return {
    models: Object.fromEntries(models.map((m) => [m, per((s) => summarize(values(m, s)))])),
    difference: per((s) => pairedDifference(values(first, s), values(last, s))),
    gain: Object.fromEntries(methods.map((m) => [m, per((s) => pairedDifference(values(UNTRAINED, s), values(m, s)))])),
  };
}

function means(st: MetricStats, models: string[]): Record<string, Record<string, number>> {
  return Object.fromEntries(models.map((m) => [m, Object.fromEntries(Object.entries(st.models[m]).map(([s, v]) => [s, v.mean]))]));
}

/** The report object from per-seed results (every run must hold every model and setting). */
export function buildReport(input: ReportInput): CompareReport {
  const { runs, methods, settings } = input;
  if (runs.length === 0) throw new RangeError('report: no seeds');
  if (methods.length < 1) throw new RangeError('report: no methods');
  const models = [UNTRAINED, ...methods];
  const linear = metricStats(runs, (r) => r.linear, models, methods, settings);
  const withKnn = runs.every((r) => r.knn);
  const knn = withKnn ? metricStats(runs, (r) => r.knn!, models, methods, settings) : undefined;
  const meanLinear = means(linear, models);
  const { [UNTRAINED]: untrained, ...results } = meanLinear;
  return {
    config: input.config, adapter: input.adapter, wall_s: input.wall_s, ...(input.command ? { command: input.command } : {}),
    settings, methods, test_images: input.test_images, seeds: runs.map((r) => r.seed),
    results, untrained, ...(knn ? { knn: means(knn, models) } : {}),
    stats: { linear, ...(knn ? { knn } : {}) },
    runs,
  };
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '-');
const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)}` : '-');
const cell = (s: Summary) => (s.n > 1 ? `${fmt(s.mean)} ± ${fmt(s.sd)}` : fmt(s.mean));
const interval = (d: Interval) => (d.ci95 ? `[${signed(d.ci95[0])}, ${signed(d.ci95[1])}]` : `n=${d.n}`);

function table(r: CompareReport, st: MetricStats): string[] {
  const models = [UNTRAINED, ...r.methods];
  const [a, b] = [r.methods[0], r.methods[r.methods.length - 1]];
  return [
    `| setting | ${models.join(' | ')} | ${b} - ${a} | 95% CI |`,
    `|---|${models.map(() => '---:').join('|')}|---:|---|`,
    ...r.settings.map((s) => `| ${s} | ${models.map((m) => cell(st.models[m][s])).join(' | ')} | ${signed(st.difference[s].mean)} | ${interval(st.difference[s])} |`),
  ];
}

function gainTable(r: CompareReport, st: MetricStats): string[] {
  return [
    `| setting | ${r.methods.map((m) => `${m} - ${UNTRAINED} | 95% CI`).join(' | ')} |`,
    `|---|${r.methods.map(() => '---:|---').join('|')}|`,
    ...r.settings.map((s) => `| ${s} | ${r.methods.map((m) => `${signed(st.gain[m][s].mean)} | ${interval(st.gain[m][s])}`).join(' | ')} |`),
  ];
}

/** What an interval says about a difference, in words. */
function verdict(d: Interval, what: string, noise: number): string {
  if (d.ci95) {
    const [lo, hi] = d.ci95;
    if (lo > 0) return `${what} by ${signed(d.mean)} points (95% CI ${interval(d)}: resolved)`;
    if (hi < 0) return `${what} by ${signed(d.mean)} points (95% CI ${interval(d)}: resolved, the other way)`;
    return `${signed(d.mean)} points, not resolved (95% CI ${interval(d)} includes 0)`;
  }
  const beyond = Math.abs(d.mean) > noise;
  return `${signed(d.mean)} points with one seed (${beyond ? 'beyond' : 'within'} the test set's ±${noise.toFixed(1)}; seed-to-seed spread not measured, so not resolved)`;
}

/** The plain reading: test-set noise, each method against the untrained backbone, and SSQL
 * against SimSiam, at full precision and at the lowest setting. */
function reading(r: CompareReport): string[] {
  const st = r.stats.linear;
  const [a, b] = [r.methods[0], r.methods[r.methods.length - 1]];
  const noise = binomialHalfWidth95(r.untrained[r.settings[0]], r.test_images);
  const n = r.seeds.length;
  const lines = [
    `- ${n} seed${n > 1 ? 's' : ''} (${r.seeds.join(', ')}); ${r.test_images} test images: one accuracy near ${fmt(r.untrained[r.settings[0]])}% carries ±${noise.toFixed(1)} points of test-set noise (95%).` +
      (n > 1 ? ' Intervals are 95% t intervals of differences paired by seed (both methods and the untrained backbone start from the seed\'s initialization).' : ' With one seed there are no intervals: a difference of a few points may be seed-to-seed variation.'),
  ];
  const keySettings = [...new Set([r.settings[0], r.settings[r.settings.length - 1]])];
  for (const s of keySettings) {
    for (const m of r.methods) lines.push(`- ${s}: ${m} against the untrained backbone: ${verdict(st.gain[m][s], st.gain[m][s].mean >= 0 ? 'above' : 'below', noise)}.`);
    if (r.methods.length > 1) lines.push(`- ${s}: ${b} - ${a}: ${verdict(st.difference[s], st.difference[s].mean >= 0 ? `${b} ahead` : `${a} ahead`, noise)}.`);
  }
  return lines;
}

export function reportMarkdown(r: CompareReport): string {
  const [a, b] = [r.methods[0], r.methods[r.methods.length - 1]];
  const n = r.seeds.length;
  const lines = [
    `# ${r.methods.join(' vs ')}: linear top-1 (%) after post-training quantization`,
    '',
    n > 1
      ? `Mean ± sd over seeds ${r.seeds.join(', ')}; \`${b} - ${a}\` is the mean of the per-seed differences, with its 95% t interval. \`${UNTRAINED}\`: the same architecture and initialization, never trained.`
      : `Seed ${r.seeds[0]}. \`${UNTRAINED}\`: the same architecture and initialization, never trained.`,
    '',
    ...table(r, r.stats.linear),
    '',
    'Gain over the untrained backbone (paired by seed):',
    '',
    ...gainTable(r, r.stats.linear),
    '',
    '## Reading',
    '',
    ...reading(r),
  ];
  if (r.stats.knn) lines.push('', '## kNN top-1 (%, k=200, cosine)', '', ...table(r, r.stats.knn));
  // A resumed comparison keeps what earlier runs measured: its own wall time is only a part.
  const pretrainS = r.runs.reduce((t, run) => t + Object.values(run.pretrain).reduce((u, p) => u + p.wall_s, 0), 0);
  lines.push('', `Adapter: ${r.adapter}. Wall time of the run that wrote this report: ${(r.wall_s / 60).toFixed(1)} min (a resumed run counts only its own part; pretraining below took ${(pretrainS / 60).toFixed(1)} min in all).`);
  for (const run of r.runs) {
    for (const [m, p] of Object.entries(run.pretrain)) lines.push(`Seed ${run.seed}, pretraining ${m}: ${p.images_per_s.toFixed(1)} images/s, ${p.wall_s.toFixed(0)} s, final loss ${p.final_loss?.toFixed(4) ?? '-'}.`);
  }
  lines.push('', 'Configuration:', '', '```json', JSON.stringify(r.config, null, 2), '```');
  if (r.command) lines.push('', `Command: \`${r.command}\``);
  return lines.join('\n') + '\n';
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Accuracy against bit setting (settings in the given order, FP first): one line per model
 * (the untrained backbone dashed), error bars of ±1 sd when there are several seeds. */
export function reportSvg(r: CompareReport): string {
  const models = [UNTRAINED, ...r.methods];
  const st = r.stats.linear;
  const settings = r.settings;
  const W = 640, H = 400, left = 56, right = 150, top = 36, bottom = 56;
  const pw = W - left - right, ph = H - top - bottom;
  const x = (i: number) => left + (settings.length === 1 ? pw / 2 : (i * pw) / (settings.length - 1));
  const y = (v: number) => top + ph - (Math.max(0, Math.min(100, v)) / 100) * ph;
  const colors: Record<string, string> = { [UNTRAINED]: '#7f7f7f' };
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  r.methods.forEach((m, k) => { colors[m] = palette[k % palette.length]; });
  const n = r.seeds.length;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${left + pw / 2}" y="20" text-anchor="middle" font-size="14">Linear top-1 after PTQ vs bit-width${n > 1 ? ` (mean ± sd, ${n} seeds)` : ''}</text>`,
  ];
  for (let v = 0; v <= 100; v += 20) {
    parts.push(`<line x1="${left}" y1="${y(v)}" x2="${left + pw}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(`<text x="${left - 8}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  settings.forEach((s, i) => parts.push(`<text x="${x(i)}" y="${top + ph + 20}" text-anchor="middle">${escapeXml(s)}</text>`));
  parts.push(`<text x="${left + pw / 2}" y="${H - 12}" text-anchor="middle">bit setting (weights w, activations a)</text>`);
  parts.push(`<text x="16" y="${top + ph / 2}" text-anchor="middle" transform="rotate(-90 16 ${top + ph / 2})">top-1 (%)</text>`);
  models.forEach((m, k) => {
    const c = colors[m];
    const dash = m === UNTRAINED ? ' stroke-dasharray="6 4"' : '';
    const pts = settings.map((s, i) => ({ px: x(i), s: st.models[m][s] }));
    parts.push(`<polyline class="series" data-model="${escapeXml(m)}" fill="none" stroke="${c}" stroke-width="2"${dash} points="${pts.map((p) => `${p.px.toFixed(1)},${y(p.s.mean).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) {
      if (p.s.n > 1) {
        const [lo, hi] = [y(p.s.mean - p.s.sd), y(p.s.mean + p.s.sd)];
        parts.push(`<path class="error-bar" d="M${p.px.toFixed(1)},${lo.toFixed(1)}V${hi.toFixed(1)}M${(p.px - 4).toFixed(1)},${lo.toFixed(1)}h8M${(p.px - 4).toFixed(1)},${hi.toFixed(1)}h8" stroke="${c}" stroke-width="1.5"/>`);
      }
      parts.push(`<circle cx="${p.px.toFixed(1)}" cy="${y(p.s.mean).toFixed(1)}" r="3.5" fill="${c}"/>`);
    }
    parts.push(`<line x1="${left + pw + 16}" y1="${top + 12 + 20 * k}" x2="${left + pw + 40}" y2="${top + 12 + 20 * k}" stroke="${c}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${left + pw + 46}" y="${top + 16 + 20 * k}">${escapeXml(m)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** The main table of report.md read back (tests, and tools reading reports): per setting the
 * mean of each model's column and the difference column. */
export function parseReportTable(md: string): { models: string[]; rows: Record<string, { means: number[]; difference: number }> } {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.startsWith('| setting |'));
  if (start < 0) throw new RangeError('report: no table');
  const header = lines[start].split('|').map((c) => c.trim()).filter(Boolean);
  const models = header.slice(1, -2);
  const rows: Record<string, { means: number[]; difference: number }> = {};
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean);
    if (cells.length !== header.length) break;
    rows[cells[0]] = { means: cells.slice(1, 1 + models.length).map((c) => parseFloat(c)), difference: parseFloat(cells[1 + models.length]) };
  }
  return { models, rows };
}
