#!/usr/bin/env node
// The demo page's browser test: starts the demo server (tools/demo-server.mjs, random port),
// opens `/?autotest=1` in headless Chromium (tests/browser/chromium.mjs; SwiftShader WebGPU), where
// the page trains the tiny model for a few steps, runs a two-setting PTQ evaluation, the ONNX
// export at 4w4a and a checkpoint round trip (safetensors out, into a new Trainer) and POSTs what
// it shows; then checks that the loss chart and the bit display updated and that no console
// error appeared, and saves a screenshot (DevTools protocol, Page.captureScreenshot) to
// tests/browser/artifacts/demo.png. Ends with the line CI reads: `N passed, N failed`.
//
// Usage: node tests/browser/demo.mjs [--steps N] [--no-eval]
// Environment: CHROMIUM (browser binary), SSQL_DEMO_TIMEOUT_S (whole run, default 180: the page trains, evaluates, exports ONNX and round-trips a checkpoint, ~100 s on a loaded 2-core machine).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { root } from '../../tools/build-web.mjs';
import { DATA_DIR, DATA_FILES, startDemoServer } from '../../tools/demo-server.mjs';
import { MISSING_CHROMIUM, captureScreenshot, findChromium, launchChromium } from './chromium.mjs';

// Node 20 has a WebSocket client only behind a flag (the screenshot needs it): rerun with it.
if (typeof WebSocket === 'undefined' && !process.execArgv.includes('--experimental-websocket')) {
  const r = spawnSync(process.execPath, ['--experimental-websocket', '--no-warnings=ExperimentalWarning', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const args = process.argv.slice(2);
const stepsAt = args.indexOf('--steps');
const steps = stepsAt >= 0 ? Number(args[stepsAt + 1]) : 3;
const withEval = !args.includes('--no-eval');
const timeoutS = Number(process.env.SSQL_DEMO_TIMEOUT_S ?? 180);
const artifact = join(root, 'tests/browser/artifacts/demo.png');
const t0 = performance.now();
const seconds = () => ((performance.now() - t0) / 1000).toFixed(1);

let passed = 0;
let failed = 0;
function check(name, ok, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`[demo] ${ok ? '✓' : '✘'} ${name}${detail ? `: ${detail}` : ''}`);
}
function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

const missing = DATA_FILES.filter((f) => !existsSync(join(DATA_DIR, f)));
if (missing.length > 0) {
  check('Fashion-MNIST is installed', false, `${DATA_DIR} lacks ${missing.join(', ')} (Debian: apt-get install dataset-fashion-mnist)`);
  finish();
}
const chromium = findChromium();
if (!chromium) {
  check('Chromium', false, MISSING_CHROMIUM);
  finish();
}

let onReport = () => {};
let server;
try {
  server = await startDemoServer({ port: 0, onReport: (r) => onReport(r) });
  check('the demo bundle builds without Node modules', true);
} catch (e) {
  check('the demo bundle builds without Node modules', false, e.problems ? e.message : (e.stack ?? e));
  finish();
}

const pageUrl = `${server.url}?autotest=1&steps=${steps}&checkpoint=1&onnx=1${withEval ? '&eval=1' : ''}`;
const browser = launchChromium(chromium, pageUrl, { devtools: true, windowSize: '1200,1000' });
const outcome = await new Promise((resolve) => {
  const timer = setTimeout(() => resolve({ kind: 'timeout' }), timeoutS * 1000);
  const exitCheck = setInterval(() => { if (browser.exited) resolve({ kind: 'exited' }); }, 500);
  onReport = (report) => resolve({ kind: 'report', report });
  onReport.cleanup = () => { clearTimeout(timer); clearInterval(exitCheck); };
});
onReport.cleanup?.();

if (outcome.kind === 'report') {
  const r = outcome.report;
  console.log(`[demo] page: ${r.steps} steps, loss ${r.loss}, bits ${r.bits}, ${r.ips} images/s, ` +
    `${r.accuracy ? `accuracy ${JSON.stringify(r.accuracy)}, ` : ''}${(r.ms / 1000).toFixed(1)} s; status: ${r.status}`);
  check(`trained ${steps} steps`, r.steps === steps, `trainer at step ${r.steps}, state ${r.state}`);
  check('the loss chart shows a point per step', r.points === steps && r.polylines === 1, `${r.points} points, ${r.polylines} polyline(s)`);
  check('the bit display shows the sampled pair', /^[2-8]w[4-8]a$/.test(r.bits ?? ''), JSON.stringify(r.bits));
  check('images/s is shown', Number(r.ips) > 0, JSON.stringify(r.ips));
  if (withEval) {
    const acc = r.accuracy ?? {};
    check('the quick evaluation draws a bar per setting', r.accBars === 2 && ['fp', '4w4a'].every((k) => Number.isFinite(acc[k])), JSON.stringify(acc));
  }
  // The tiny ResNet at 4w4a: stem + 4 blocks x (inner + output) activation quantizers.
  check('the ONNX export at 4w4a gives a model with every activation quantizer', r.onnx?.setting === '4w4a' && r.onnx.bytes > 1000 &&
    r.onnx.activationQuantizers === 9 && r.onnx.head?.[0] === 0x08 && r.onnx.head?.[1] === 7, JSON.stringify(r.onnx ?? null));
  check('a checkpoint round trip (safetensors) restores the step', r.checkpoint?.restoredStep === steps && r.checkpoint.bytes > 1000,
    JSON.stringify(r.checkpoint ?? null));
  check('no console error', r.errors.length === 0, r.errors.join('\n    '));
  try {
    const png = await captureScreenshot(await browser.devtoolsPort(), server.url);
    mkdirSync(join(artifact, '..'), { recursive: true });
    writeFileSync(artifact, png);
    check('screenshot saved', png.length > 1000, `${relative(root, artifact)} (${(png.length / 1024).toFixed(0)} KiB)`);
  } catch (e) {
    check('screenshot saved', false, e.message);
  }
} else {
  check('the page reported', false, outcome.kind === 'timeout' ? `timed out after ${timeoutS} s` : `Chromium ended (${browser.exited})`);
  const log = browser.log();
  if (log) console.log(`[demo] Chromium's last output:\n${log}`);
}
server.close();
await browser.stop();
console.log(`[demo] ${seconds()} s with the build and Chromium's start`);
finish();
