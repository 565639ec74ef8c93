#!/usr/bin/env node
// The browser suite: the engine's kernel and autograd tests (every tests/**/*.test.ts whose
// imports reach no Node module) run in headless Chromium on its WebGPU adapter (SwiftShader),
// with output poisoning on, and the browser bundle's no-Node-modules check runs first.
//
// How: esbuild bundles tests/browser/page.ts and the chosen test files (one chunk each, loaded in
// order, uvu patched to report each test); a node:http server on 127.0.0.1 (random port) serves
// them from memory; Debian's chromium opens the page, which POSTs each result back. Ends with
// the line CI reads: `N passed, N failed`.
//
// What fails the run (counted by tests/browser/tally.mjs): failing tests; a test file that does
// not load; an uncaught exception, unhandled rejection or console.error on the page (also one
// that stops the page before its runner starts); a chosen file that never reports; no test run
// at all; no browser-compatible test file at all (without a filter: with one, the filter is
// shared with the Node suite and may match nothing here); a timeout, or Chromium ending early.
//
// Which files: every tests/engine/**/*.test.ts (the kernel, autograd, layer and optimizer tests)
// that bundles for the browser; with --all also the tests/ssql ones that do (slower: SSQL
// training steps on SwiftShader take minutes).
//
// Usage: node tests/browser/run.mjs [filter] [--all] [--verbose]
//   filter      only test files whose path contains it
//   --all       also tests/ssql/*.test.ts
//   --verbose   list every test, not only the failures
// Environment: CHROMIUM (browser binary), SSQL_BROWSER_TIMEOUT_S (whole run, default 480: the full suite takes
// about 260-300 s on a quiet 2-core machine, most of it compiling conv pipelines in SwiftShader;
// the limit is there to end a hung page, not to time the tests).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { basename, join, relative } from 'node:path';
import * as esbuild from 'esbuild';
import { browserOptions, buildWeb, describeViolations, noNodeModules, root } from '../../tools/build-web.mjs';
import { MISSING_CHROMIUM, findChromium, launchChromium } from './chromium.mjs';
import { Tally } from './tally.mjs';

const args = process.argv.slice(2);
const verbose = args.includes('--verbose');
const filter = args.find((a) => !a.startsWith('--'));
const timeoutS = Number(process.env.SSQL_BROWSER_TIMEOUT_S ?? 480);
const testsDir = join(root, 'tests');
const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);

let passed = 0;
let failed = 0;
function finish(code) {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code ?? (failed > 0 || passed === 0 ? 1 : 0));
}
function fatal(msg) {
  console.log(`[browser] ${msg}`);
  failed++;
  finish(1);
}

// --- 1. The browser bundle must build without Node modules (counts as a test) -----------------
try {
  const r = await buildWeb();
  passed++;
  console.log(`[browser] ${relative(root, r.outfile)} built, no Node modules (${(r.bytes / 1024).toFixed(0)} KiB)`);
} catch (e) {
  failed++;
  console.log(`[browser] ✘ build:web: ${e.problems ? e.message : (e.stack ?? e)}`);
}

// --- 2. Choose the test files: those that bundle for the browser ---------------------------------
function findTests(dir) {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'browser' ? [] : findTests(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}
const dirs = args.includes('--all') ? [join(testsDir, 'engine'), join(testsDir, 'ssql')] : [join(testsDir, 'engine')];
const candidates = dirs.flatMap((d) => (existsSync(d) ? findTests(d) : [])).filter((f) => !filter || f.includes(filter));
/** No test file to run: a failure, unless a filter (shared with the Node suite) chose nothing here. */
function nothingToRun(why) {
  if (filter) {
    console.log(`[browser] ${why}: nothing to run here`);
    finish(failed > 0 ? 1 : 0);
  }
  fatal(`${why}: the browser suite would test nothing`);
}
if (candidates.length === 0) nothingToRun(filter ? `no test files match ${JSON.stringify(filter)}` : 'no test files found');

// uvu's runner, patched so each test's start and result reach the page (globalThis.UVU_START,
// UVU_REPORT), its queue always waits for the page to run it, and it prints nothing.
const UVU_PATCHES = [
  ['isCLI = isCLI || !!globalThis.UVU_DEFER;', 'isCLI = true;'],
  ['let write = console.log;', 'let write = () => {};'],
  ['state.__test__ = test.name;', 'state.__test__ = test.name; globalThis.UVU_START?.(name, test.name);'],
  ['write(PASS);', 'write(PASS); globalThis.UVU_REPORT?.(name, test.name, null);'],
  ['write(FAIL);', 'write(FAIL); globalThis.UVU_REPORT?.(name, test.name, err);'],
];
const patchUvu = {
  name: 'patch-uvu',
  setup(build) {
    build.onLoad({ filter: /[\\/]uvu[\\/]dist[\\/]index\.mjs$/ }, (a) => {
      let src = readFileSync(a.path, 'utf8');
      for (const [from, to] of UVU_PATCHES) {
        if (src.split(from).length !== 2) throw new Error(`uvu's source changed: expected exactly one "${from}" in ${a.path}`);
        src = src.replace(from, to);
      }
      return { contents: src, loader: 'js' };
    });
  },
};

const entryName = (f) => relative(testsDir, f).replaceAll('\\', '/');
const entrySource = [
  `import { runTests } from './browser/page.ts';`,
  `runTests([`,
  ...candidates.map((f) => `  [${JSON.stringify(entryName(f))}, () => import(${JSON.stringify(`./${entryName(f)}`)})],`),
  `]);`,
].join('\n');

const violations = [];
let bundle;
try {
  bundle = await esbuild.build({
    ...browserOptions(),
    stdin: { contents: entrySource, resolveDir: testsDir, sourcefile: 'browser-tests.js', loader: 'js' },
    outdir: '/bundle',
    splitting: true,
    sourcemap: 'inline',
    write: false,
    plugins: [noNodeModules(violations), patchUvu],
  });
} catch (e) {
  fatal(`bundling the browser tests failed: ${e.message}`);
}

// Leave out the test files that reach a Node module (they read fixtures, spawn the CLI, ...).
const inputs = bundle.metafile.inputs;
const offenders = new Set(violations.map((v) => v.importer));
function reachesNode(file, seen = new Set()) {
  if (offenders.has(file)) return true;
  if (seen.has(file)) return false;
  seen.add(file);
  return (inputs[file]?.imports ?? []).some((i) => !i.external && reachesNode(i.path, seen));
}
const chosen = candidates.filter((f) => !reachesNode(relative(root, f)));
const excluded = candidates.filter((f) => !chosen.includes(f));
if (excluded.length > 0) {
  console.log(`[browser] left out (they import Node modules): ${excluded.map(entryName).join(', ')}`);
}
if (chosen.length === 0) nothingToRun('every test file imports Node modules');
if (excluded.length > 0) {
  // Rebuild without them, so the bundle holds no Node imports at all.
  violations.length = 0;
  const source = entrySource.split('\n').filter((l) => !excluded.some((f) => l.includes(JSON.stringify(entryName(f))))).join('\n');
  bundle = await esbuild.build({
    ...browserOptions(),
    stdin: { contents: source, resolveDir: testsDir, sourcefile: 'browser-tests.js', loader: 'js' },
    outdir: '/bundle', splitting: true, sourcemap: 'inline', write: false,
    plugins: [noNodeModules(violations), patchUvu],
  });
  if (violations.length > 0) fatal(`Node modules still in the test bundle:\n${describeViolations(violations, bundle.metafile).join('\n')}`);
}
const files = new Map(bundle.outputFiles.map((f) => [`/${relative('/bundle', f.path)}`, f.contents]));
const entryJs = [...files.keys()].find((p) => p.startsWith('/stdin') || p.includes('browser-tests')) ??
  `/${basename(Object.keys(bundle.metafile.outputs).find((o) => bundle.metafile.outputs[o].entryPoint))}`;

// --- 3. Serve the page and collect the events ----------------------------------------------------
// Until page.ts has started (it sets SSQL_TEST_PAGE and reports errors itself), an error - the
// bundle failing to load or to evaluate - is fatal: nothing else would report it.
const earlyErrors = `
const early = (what) => {
  if (globalThis.SSQL_TEST_PAGE) return;
  fetch('/event', { method: 'POST', body: JSON.stringify({ type: 'fatal', message: 'the test page failed before its runner started: ' + what }) });
};
addEventListener('error', (ev) => early(ev.target && ev.target !== window ? 'cannot load ' + (ev.target.src || ev.target) : String((ev.error && ev.error.stack) || ev.message)), true);
addEventListener('unhandledrejection', (ev) => early('unhandled rejection: ' + String((ev.reason && ev.reason.stack) || ev.reason)));`;
const html = `<!doctype html><meta charset="utf-8"><title>ssql-webgpu browser tests</title>
<script>${earlyErrors}</script>
<script type="module" src="${entryJs}"></script>`;
let onEvent = () => {};
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/event') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.writeHead(204).end();
      try { onEvent(JSON.parse(body)); } catch (e) { console.log(`[browser] bad event: ${e.message}`); }
    });
    return;
  }
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
  } else if (files.has(path)) {
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(files.get(path));
  } else {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

// --- 4. Launch headless Chromium ------------------------------------------------------------------
const chromium = findChromium();
if (!chromium) {
  server.close();
  fatal(MISSING_CHROMIUM);
}
const browser = launchChromium(chromium, url);

async function stopBrowser() {
  server.close();
  server.closeAllConnections?.();
  await browser.stop();
}

// --- 5. Report -------------------------------------------------------------------------------
const tally = new Tally(chosen.map(entryName));
let current = null;
const outcome = await new Promise((resolve) => {
  const timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutS * 1000);
  const exitCheck = setInterval(() => {
    if (browser.exited) resolve({ kind: 'exited' });
  }, 500);
  onEvent = (ev) => {
    switch (ev.type) {
      case 'adapter':
        console.log(`[browser] ${ev.userAgent.match(/(Headless)?Chrom[a-z]*\/[\d.]+/)?.[0] ?? 'Chromium'}, adapter ${ev.vendor} ${ev.architecture}` +
          `${ev.fallback ? ' (fallback)' : ''}, ${ev.maxInvocations} invocations per workgroup; ${chosen.length} test files`);
        break;
      case 'start':
        current = `${ev.file} > ${ev.test}`;
        break;
      case 'fatal':
        resolve({ kind: 'fatal', message: ev.message });
        break;
      case 'done':
        resolve({ kind: 'done', ms: ev.ms });
        break;
      default: {
        const line = tally.onEvent(ev, verbose);
        if (line) console.log(`[browser] ${line}`);
      }
    }
  };
  onEvent.cleanup = () => { clearTimeout(timer); clearInterval(exitCheck); };
});
onEvent.cleanup?.();
await stopBrowser();

for (const line of tally.finish(outcome.kind === 'done')) console.log(`[browser] ${line}`);
passed += tally.passed;
failed += tally.failed;
if (outcome.kind === 'done') {
  console.log(`[browser] ${chosen.length} files, ${tally.testsRun} tests in ${(outcome.ms / 1000).toFixed(1)} s (${seconds()} s with the build and Chromium's start)`);
  finish();
}
if (outcome.kind === 'fatal') console.log(`[browser] ${outcome.message}`);
if (outcome.kind === 'timeout') console.log(`[browser] timed out after ${timeoutS} s${current ? `, during ${current}` : ' before any test started'}`);
if (outcome.kind === 'exited') console.log(`[browser] Chromium ended (${browser.exited}) before the tests finished${current ? `, during ${current}` : ''}`);
// Chromium's own log, without the D-Bus complaints every container run has.
const log = browser.log();
if (log) console.log(`[browser] Chromium's last output:\n${log}`);
finish(1);
