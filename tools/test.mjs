#!/usr/bin/env node
// `npm test`: set-up, type check, then the Node suite (tests/run.ts), the browser suite
// (tests/browser/run.mjs: the engine tests in headless Chromium) and the demo suite
// (tests/browser/demo.mjs: the demo page trains a few steps in Chromium), each in a child
// process. Their counts add up into the last line, the one CI reads: `N passed, N failed`. If a child dies
// without printing its summary (a crash in the driver, say), that child counts as one failure.
//
// Usage: npm test [-- filter] [--no-browser] [--verbose]
//   filter        only test files whose path contains it (both suites)
//   --no-browser  skip the browser and demo suites (and the Chromium install); the demo suite
//                 also runs only without a filter or with one that matches tests/browser/demo.mjs
//   --verbose     the browser suite lists every test
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const browser = !args.includes('--no-browser');
const filter = args.filter((a) => !a.startsWith('--'));
const SUMMARY = /^(\d+) passed, (\d+) failed\s*$/;

const setup = spawnSync(process.execPath, [join(root, 'tools/setup.mjs'), '--dataset', ...(browser ? ['--browser'] : [])], { stdio: 'inherit' });
if (setup.status !== 0) {
  console.log('0 passed, 1 failed');
  process.exit(1);
}

// Type-check first: esbuild strips types without checking them.
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });
if (tsc.status !== 0) {
  console.log('\ntype check failed (tsc -p .)');
  console.log('0 passed, 1 failed');
  process.exit(1);
}

/** Runs one suite, echoing its output; its own summary line is relabelled `<label>: ...`. */
function suite(label, argv) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, argv, { cwd: root, stdio: ['inherit', 'pipe', 'inherit'] });
    let pending = '';
    let counts = null;
    const line = (l) => {
      const m = SUMMARY.exec(l);
      if (m) {
        counts = { passed: Number(m[1]), failed: Number(m[2]) };
        process.stdout.write(`${label}: ${l}\n`);
      } else {
        if (l.trim() !== '') counts = null; // the summary must be the last line
        process.stdout.write(`${l}\n`);
      }
    };
    child.stdout.on('data', (chunk) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop();
      lines.forEach(line);
    });
    child.on('close', (code, signal) => {
      if (pending) line(pending);
      const seconds = ((performance.now() - t0) / 1000).toFixed(0);
      if (!counts) {
        console.log(`\n${label} ended without a summary (exit ${code}${signal ? `, signal ${signal}` : ''})`);
        resolve({ passed: 0, failed: 1, seconds });
      } else {
        // A non-zero exit with no failure counted (no test files, say) still fails.
        resolve({ ...counts, failed: counts.failed + (code !== 0 && counts.failed === 0 ? 1 : 0), seconds });
      }
    });
  });
}

const node = await suite('node suite', ['--import', './tools/ts-loader.mjs', 'tests/run.ts', ...filter]);
const results = [['node', node]];
if (browser) {
  const extra = args.includes('--verbose') ? ['--verbose'] : [];
  results.push(['browser', await suite('browser suite', ['tests/browser/run.mjs', ...filter, ...extra])]);
  // The demo page (tests/browser/demo.mjs): a few training steps in headless Chromium, a screenshot.
  if (filter.length === 0 || filter.some((f) => 'tests/browser/demo.mjs'.includes(f))) {
    results.push(['demo', await suite('demo suite', ['tests/browser/demo.mjs'])]);
  }
}
const passed = results.reduce((n, [, r]) => n + r.passed, 0);
const failed = results.reduce((n, [, r]) => n + r.failed, 0);
console.log(`\n${results.map(([name, r]) => `${name}: ${r.passed} passed, ${r.failed} failed (${r.seconds} s)`).join('; ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
