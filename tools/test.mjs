#!/usr/bin/env node
// `npm test`: set-up, type check, then the suite in a child process. If the child dies without printing
// its summary (a crash in the driver, say), this prints a failing summary so CI's last line is
// always `N passed, N failed`.
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const setup = spawnSync(process.execPath, [join(root, 'tools/setup.mjs'), '--dataset'], { stdio: 'inherit' });
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

const child = spawn(process.execPath, ['--import', './tools/ts-loader.mjs', 'tests/run.ts', ...process.argv.slice(2)], {
  cwd: root, stdio: ['inherit', 'pipe', 'inherit'],
});
let last = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  last = (last + chunk.toString()).slice(-200);
});
child.on('close', (code, signal) => {
  const summary = /(\d+) passed, (\d+) failed\s*$/.test(last);
  if (!summary) {
    console.log(`\ntest process ended without a summary (exit ${code}${signal ? `, signal ${signal}` : ''})`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  }
  process.exit(code ?? 1);
});
