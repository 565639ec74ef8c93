// compare's report (ssql/report.ts) and its statistics (ssql/stats.ts) on a made-up report whose
// numbers are worked out by hand: mean +- sd per setting, the paired SSQL - SimSiam difference
// and each method's gain over the untrained backbone with 95% t intervals, the one-seed case
// (no intervals), the Markdown table read back, the reading's verdicts, and the SVG's series
// and error bars.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UNTRAINED, buildReport, parseReportTable, reportMarkdown, reportSvg } from '../../ssql/report.ts';
import type { SeedRun } from '../../ssql/report.ts';
import { binomialHalfWidth95, meanInterval, pairedDifference, summarize, tQuantile975 } from '../../ssql/stats.ts';

const close = (a: number, b: number, tol: number, what: string) => assert.ok(Math.abs(a - b) <= tol, `${what}: ${a}, expected ${b}`);

test('stats: mean, sample sd, t quantiles, paired intervals', () => {
  const s = summarize([2, 4, 4, 4, 5, 5, 7, 9]);
  close(s.mean, 5, 1e-12, 'mean');
  close(s.sd, Math.sqrt(32 / 7), 1e-12, 'sample sd (n - 1)');
  assert.ok(Number.isNaN(summarize([3]).sd), 'one value: no sd');
  // Student's t 0.975 quantiles (tables): df 1, 2, 10, 30, and the expansion past the table.
  close(tQuantile975(1), 12.7062, 1e-4, 't(1)');
  close(tQuantile975(2), 4.3027, 1e-4, 't(2)');
  close(tQuantile975(10), 2.2281, 1e-4, 't(10)');
  close(tQuantile975(30), 2.0423, 1e-4, 't(30)');
  close(tQuantile975(40), 2.0211, 2e-4, 't(40)');
  close(tQuantile975(120), 1.9799, 2e-4, 't(120)');
  close(tQuantile975(100000), 1.96, 1e-3, 't(inf)');
  // Differences 1, 2, 6: mean 3, sd sqrt(7), half-width 4.3027 sqrt(7) / sqrt(3).
  const d = pairedDifference([10, 20, 30], [11, 22, 36]);
  close(d.mean, 3, 1e-12, 'paired mean');
  const half = 4.3027 * Math.sqrt(7) / Math.sqrt(3);
  close(d.ci95![0], 3 - half, 1e-3, 'CI low');
  close(d.ci95![1], 3 + half, 1e-3, 'CI high');
  assert.is(meanInterval([5]).ci95, null, 'one seed: no interval');
  close(binomialHalfWidth95(80, 10000), 100 * 1.959964 * Math.sqrt(0.16 / 10000), 1e-9, 'binomial half-width');
  assert.throws(() => summarize([]), /no values/);
  assert.throws(() => summarize([1, NaN]), /NaN is not a finite number/);
  assert.throws(() => pairedDifference([1], [1, 2]), /1 values against 2/);
});

/** Three seeds, two settings, made up so the statistics are easy to work out. */
function madeUp(): SeedRun[] {
  const run = (seed: number, u: number[], a: number[], b: number[]): SeedRun => ({
    seed,
    linear: { [UNTRAINED]: { fp: u[0], '4w4a': u[1] }, simsiam: { fp: a[0], '4w4a': a[1] }, ssql: { fp: b[0], '4w4a': b[1] } },
    pretrain: { simsiam: { images_per_s: 30, wall_s: 100, final_loss: -0.5 }, ssql: { images_per_s: 15, wall_s: 200, final_loss: -0.4 } },
  });
  return [
    // fp: untrained 79, 80, 81; simsiam 82, 84, 86 (gain 3, 4, 5); ssql 83, 86, 89 (ssql - simsiam 1, 2, 3)
    // 4w4a: untrained 70, 70, 70; simsiam 60, 70, 62 (gain -10, 0, -8); ssql 60, 70, 62 (difference 0, 0, 0)
    run(0, [79, 70], [82, 60], [83, 60]),
    run(1, [80, 70], [84, 70], [86, 70]),
    run(2, [81, 70], [86, 62], [89, 62]),
  ];
}

const input = { config: { epochs: 2 }, adapter: 'test adapter', wall_s: 600, settings: ['fp', '4w4a'], methods: ['simsiam', 'ssql'], test_images: 10000 };

test('report: mean +- sd per setting, paired differences and gains with 95% intervals, per-seed results kept', () => {
  const r = buildReport({ ...input, runs: madeUp() });
  assert.equal(r.seeds, [0, 1, 2]);
  assert.equal(r.results, { simsiam: { fp: 84, '4w4a': 64 }, ssql: { fp: 86, '4w4a': 64 } });
  assert.equal(r.untrained, { fp: 80, '4w4a': 70 });
  const st = r.stats.linear;
  close(st.models.simsiam.fp.sd, 2, 1e-12, 'simsiam fp sd');
  close(st.models.ssql.fp.sd, 3, 1e-12, 'ssql fp sd');
  close(st.models[UNTRAINED]['4w4a'].sd, 0, 1e-12, 'untrained 4w4a sd');
  // ssql - simsiam at fp: 1, 2, 3 -> mean 2, sd 1, half-width 4.3027 / sqrt(3) = 2.4842.
  close(st.difference.fp.mean, 2, 1e-12, 'difference mean');
  close(st.difference.fp.ci95![0], 2 - 2.4842, 1e-3, 'difference CI low');
  close(st.difference.fp.ci95![1], 2 + 2.4842, 1e-3, 'difference CI high');
  assert.equal(st.difference['4w4a'].ci95, [0, 0], 'identical results: a zero-width interval at 0');
  // simsiam - untrained at fp: 3, 4, 5 -> mean 4, sd 1.
  close(st.gain.simsiam.fp.mean, 4, 1e-12, 'gain mean');
  close(st.gain.simsiam.fp.ci95![0], 4 - 2.4842, 1e-3, 'gain CI low');
  close(st.gain.simsiam['4w4a'].mean, -6, 1e-12, 'a loss against the untrained backbone');
  assert.is(r.runs.length, 3);
  assert.equal(r.runs[1].linear.ssql.fp, 86, 'per-seed results stay in the report');
  assert.throws(() => buildReport({ ...input, runs: [{ ...madeUp()[0], linear: { [UNTRAINED]: { fp: 1 }, simsiam: {}, ssql: {} } }] }), /seed 0: no result for untrained at 4w4a/);
});

test('report.md: the table reads back; the reading states what is resolved and what is not', () => {
  const r = buildReport({ ...input, runs: madeUp() });
  const md = reportMarkdown(r);
  const t = parseReportTable(md);
  assert.equal(t.models, [UNTRAINED, 'simsiam', 'ssql']);
  assert.equal(t.rows.fp, { means: [80, 84, 86], difference: 2 });
  assert.match(md, '| fp | 80.00 ± 1.00 | 84.00 ± 2.00 | 86.00 ± 3.00 | +2.00 | [-0.48, +4.48] |');
  assert.match(md, /- fp: simsiam against the untrained backbone: above by \+4\.00 points \(95% CI \[\+1\.52, \+6\.48\]: resolved\)/);
  assert.match(md, /- fp: ssql - simsiam: \+2\.00 points, not resolved \(95% CI \[-0\.48, \+4\.48\] includes 0\)/);
  assert.match(md, /3 seeds \(0, 1, 2\); 10000 test images: one accuracy near 80\.00% carries ±0\.8 points of test-set noise/);
  assert.match(md, /Seed 2, pretraining ssql: 15\.0 images\/s, 200 s, final loss -0\.4000\./);
  // 600 s of this run; pretraining 3 x (100 + 200) s = 15 min, summed from the per-seed records.
  assert.match(md, 'Wall time of the run that wrote this report: 10.0 min (a resumed run counts only its own part; pretraining below took 15.0 min in all).');

  const one = reportMarkdown(buildReport({ ...input, runs: madeUp().slice(0, 1) }));
  assert.match(one, '| fp | 79.00 | 82.00 | 83.00 | +1.00 | n=1 |');
  assert.match(one, /With one seed there are no intervals/);
  assert.match(one, /- fp: simsiam against the untrained backbone: \+3\.00 points with one seed \(beyond the test set's ±0\.8; seed-to-seed spread not measured, so not resolved\)/);
});

test('accuracy.svg: a series per model (the untrained one dashed), error bars only with several seeds', () => {
  const three = reportSvg(buildReport({ ...input, runs: madeUp() }));
  assert.equal([...three.matchAll(/<polyline class="series" data-model="([^"]+)"/g)].map((m) => m[1]), [UNTRAINED, 'simsiam', 'ssql']);
  assert.match(three, /data-model="untrained"[^>]*stroke-dasharray/);
  assert.is((three.match(/class="error-bar"/g) ?? []).length, 6, 'one bar per model and setting');
  assert.match(three, /mean ± sd, 3 seeds/);
  const one = reportSvg(buildReport({ ...input, runs: madeUp().slice(0, 1) }));
  assert.is((one.match(/class="error-bar"/g) ?? []).length, 0);
  assert.is((one.match(/<polyline /g) ?? []).length, 3);
});

test.run();
