// The same kernels (bench/kernel-cases.ts) on Node (Dawn, lavapipe here) and in headless
// Chromium (SwiftShader here), side by side: `npm run bench -- browser`. The browser figures are
// recorded as the baseline of each case (ratio = browser time / Node time).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { kernelCases, timeCase } from './kernel-cases.ts';
import type { KernelCase } from './kernel-cases.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';

interface PageRecord { name: string; median_ms: number; min_ms: number; max_ms: number; runs: number; breakdown_ms?: Record<string, number>; breakdown_dispatches?: Record<string, number> }
interface PageResult { adapter?: string; error?: string; records?: PageRecord[] }
interface Chrome { stop(): Promise<void>; exited: string | null; log(): string }
interface ChromiumModule { findChromium(): string | null; launchChromium(binary: string, url: string): Chrome; MISSING_CHROMIUM: string }
interface BuildModule { root: string; buildBrowserBundle(o: { entry: string; outfile: string }): Promise<{ outputFiles: { path: string; contents: Uint8Array }[] }> }

async function browserFigures(quick: boolean, runs: number, only: string | undefined): Promise<{ adapter: string; records: Map<string, PageRecord> } | { skipped: string }> {
  const chromium = (await import('../tests/browser/chromium.mjs' as string)) as ChromiumModule;
  const build = (await import('../tools/build-web.mjs' as string)) as BuildModule;
  const binary = chromium.findChromium();
  if (!binary) return { skipped: chromium.MISSING_CHROMIUM };
  const bundle = await build.buildBrowserBundle({ entry: join(build.root, 'bench/browser-page.ts'), outfile: join(tmpdir(), 'ssql-bench-page.js') });
  const js = bundle.outputFiles.find((f) => f.path.endsWith('.js'))!.contents;
  let resolve!: (r: PageResult) => void;
  const result = new Promise<PageResult>((r) => { resolve = r; });
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/result') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => { res.end('ok'); resolve(JSON.parse(body) as PageResult); });
    } else if (req.url?.startsWith('/page.js')) {
      res.setHeader('content-type', 'text/javascript');
      res.end(js);
    } else {
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><meta charset="utf-8"><script type="module" src="/page.js"></script>');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const chrome = chromium.launchChromium(binary, `http://127.0.0.1:${port}/?quick=${quick ? 1 : 0}&runs=${runs}${only === undefined ? '' : `&only=${encodeURIComponent(only)}`}`);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<PageResult>((r) => { timer = setTimeout(() => r({ error: `no result within 600 s (${chrome.exited ?? 'running'}): ${chrome.log()}` }), 600_000); });
  const r = await Promise.race([result, timeout]);
  // A pending timer would hold the process open for the rest of the 600 s after the results came.
  clearTimeout(timer);
  await chrome.stop();
  server.close();
  if (r.error || !r.records) return { skipped: r.error ?? 'no records' };
  return { adapter: r.adapter ?? 'unknown', records: new Map(r.records.map((x) => [x.name, x])) };
}

/** GFLOP/s, or images/s for a training step, GB/s for a memory ceiling, or none (the
 * dispatch-cost case). */
function rateOf(c: KernelCase, ms: number): { gflops: number } | { images_per_s: number } | { gbps: number } | Record<string, never> {
  if (c.images) return { images_per_s: c.images / (ms / 1000) };
  if (c.bytes) return { gbps: c.bytes / (ms * 1e6) };
  return c.flops > 0 ? { gflops: c.flops / (ms * 1e6) } : {};
}

/** Kernel families with the conv design left out ('conv2d.unrolled.forward' and
 * 'conv2d.subgroup.forward' are both 'conv2d forward'): each adapter runs its own design. */
function byOp(breakdown: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [family, ms] of Object.entries(breakdown)) {
    const m = /^conv2d\.(?:unrolled|subgroup|register|workgroup)\.(\w+)/.exec(family);
    const key = m ? `conv2d ${m[1]}` : family;
    out[key] = (out[key] ?? 0) + ms;
  }
  return out;
}

/** The training steps' GPU time per kernel family, Node beside the browser, biggest first. */
function printBreakdowns(records: BenchRecord[]): void {
  for (const r of records) {
    if (!r.breakdown_ms || !r.baseline?.breakdown_ms) continue;
    const node = byOp(r.breakdown_ms);
    const browser = byOp(r.baseline.breakdown_ms);
    const families = [...new Set([...Object.keys(node), ...Object.keys(browser)])].sort((a, b) => (browser[b] ?? 0) - (browser[a] ?? 0));
    const total = (m: Record<string, number>) => Object.values(m).reduce((s, v) => s + v, 0);
    // Dispatches a step: where they differ, the sides ran the family on different shapes (Node's
    // tuner may give a shape to another design), so its ratio is not one kernel's speed.
    const nodeCount = byOp(r.breakdown_dispatches ?? {});
    const browserCount = byOp(r.baseline.breakdown_dispatches ?? {});
    console.log(`\n${r.case}: GPU ms of a step by kernel family (median of 3 profiled steps), Node | browser | ratio | dispatches a step, Node | browser (totals ${total(node).toFixed(0)} | ${total(browser).toFixed(0)})`);
    for (const f of families.slice(0, 16)) {
      const a = node[f] ?? 0;
      const b = browser[f] ?? 0;
      const counts = `${String(nodeCount[f] ?? 0).padStart(6)} ${String(browserCount[f] ?? 0).padStart(6)}${nodeCount[f] !== browserCount[f] ? '  (differ)' : ''}`;
      console.log(`  ${f.padEnd(40)} ${a.toFixed(1).padStart(8)} ${b.toFixed(1).padStart(8)} ${a > 0 ? (b / a).toFixed(1).padStart(6) : '     -'}x ${counts}`);
    }
  }
}

export async function run(opts: BenchOptions): Promise<BenchRecord[]> {
  const runs = opts.quick ? 3 : 5;
  const cases = kernelCases(opts.quick, opts.only);
  const records: BenchRecord[] = [];
  for (const c of cases) {
    const t = await timeCase(c, runs);
    records.push({ case: `${c.name} (node)`, op: c.op, ...t, ...rateOf(c, t.median_ms) });
  }
  const b = await browserFigures(opts.quick, runs, opts.only);
  for (const [i, c] of cases.entries()) {
    const r = records[i];
    if ('skipped' in b) r.baseline = { system: 'browser', skipped: b.skipped };
    else {
      const page = b.records.get(c.name)!;
      const ms = page.median_ms;
      r.baseline = {
        system: `browser (${b.adapter})`, median_ms: ms, min_ms: page.min_ms, max_ms: page.max_ms, runs: page.runs,
        ...rateOf(c, ms), ratio: ms / r.median_ms, breakdown_ms: page.breakdown_ms,
        breakdown_dispatches: page.breakdown_dispatches,
      };
    }
  }
  printBreakdowns(records);
  markCeilings(records);
  return records;
}

/** The best 'fma_ceiling' case of one side (GFLOP/s and its name), if the run had any. */
function bestOf(records: BenchRecord[], side: (r: BenchRecord) => number | undefined): { gflops: number; name: string } | null {
  let best: { gflops: number; name: string } | null = null;
  for (const r of records) {
    const g = side(r);
    if (r.op === 'fma_ceiling' && g !== undefined && (!best || g > best.gflops)) best = { gflops: g, name: r.case.replace(/^ceiling fma | \(node\)$/g, '') };
  }
  return best;
}

/** Gives every GFLOP/s case its fraction of its own adapter's FMA ceiling (Node's case of Node's
 * ceiling, the browser's of the browser's: docs/benchmarks.md#ceilings) and prints the
 * ceilings. */
function markCeilings(records: BenchRecord[]): void {
  const node = bestOf(records, (r) => r.gflops);
  const browser = bestOf(records, (r) => r.baseline?.gflops);
  for (const r of records) {
    if (node && r.gflops !== undefined) r.of_ceiling = r.gflops / node.gflops;
    if (browser && r.baseline?.gflops !== undefined) r.baseline.of_ceiling = r.baseline.gflops / browser.gflops;
  }
  if (!node) return;
  // Contention only slows a sample down, so on a busy machine the fastest sample of the best
  // shape is the better estimate of what the adapter can do; the fractions use the medians.
  const fastest = (rate: (r: BenchRecord) => number | undefined) => Math.max(...records.filter((r) => r.op === 'fma_ceiling').map((r) => rate(r) ?? 0));
  const nodeFastest = fastest((r) => r.gflops! * r.median_ms / r.min_ms);
  const browserFastest = fastest((r) => (r.baseline?.gflops && r.baseline.min_ms ? r.baseline.gflops * r.baseline.median_ms! / r.baseline.min_ms : undefined));
  console.log(`\nceilings: Node ${node.gflops.toFixed(1)} GFLOP/s, browser ${browser ? `${browser.gflops.toFixed(1)} (ratio ${(node.gflops / browser.gflops).toFixed(2)})` : 'not measured'}` +
    ` (best fma shapes: Node ${node.name}${browser ? `, browser ${browser.name}` : ''}; fastest samples: Node ${nodeFastest.toFixed(1)}${browser ? `, browser ${browserFastest.toFixed(1)}` : ''})`);
  const memory = records.filter((r) => r.op === 'copy' || r.op === 'stream');
  if (memory.length) console.log(`memory: ${memory.map((r) => `${r.case.replace(/^ceiling | \(node\)$/g, '')} Node ${r.gbps?.toFixed(1)} GB/s, browser ${r.baseline?.gbps?.toFixed(1) ?? '-'}`).join('; ')}`);
  // The question of issue #11: whether half of Node's rate is within the browser's reach at all.
  const work = records.filter((r) => r.gflops !== undefined && r.op !== 'fma_ceiling' && r.op !== 'fma_load');
  if (browser && work.length) {
    const top = work.reduce((a, b) => (b.gflops! > a.gflops! ? b : a));
    const half = top.gflops! / 2;
    console.log(`within 2x of Node: Node's fastest case (${top.case.replace(/ \(node\)$/, '')}) runs ${top.gflops!.toFixed(1)} GFLOP/s; half of it, ${half.toFixed(1)}, is ${(half / browser.gflops).toFixed(2)}x the browser's FMA ceiling`);
  }
}
