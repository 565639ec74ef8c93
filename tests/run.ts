// Runs every test file in one process on one GPU device (pipelines compile once), with output
// poisoning on, and ends with the line CI reads: `N passed, N failed`.
// Usage: node --import ./tools/ts-loader.mjs tests/run.ts [filter]
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initNodeDevice } from '../engine/device-node.ts';

// Kernel variants by the deterministic rules (engine/tuning.ts), also in the commands the tests
// spawn: measured choices would depend on timing. tests/ssql/tuning-cli.test.ts turns it on.
process.env.SSQL_TUNING = 'off';

type Outcome = [errors: string | true, ran: number, skipped: number, total: number];
type Queue = (string | null | (() => Promise<Outcome>))[][];
const g = globalThis as unknown as { UVU_DEFER: number; UVU_QUEUE: Queue; UVU_INDEX: number };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [];

const root = fileURLToPath(new URL('.', import.meta.url));
function findTests(dir: string): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return findTests(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

const filter = process.argv[2];
const files = findTests(root).filter((f) => !filter || f.includes(filter));
const engine = await initNodeDevice();
engine.poisonOutputs = true;

const { exec } = await import('uvu');
for (const [index, file] of files.entries()) {
  g.UVU_INDEX = index;
  g.UVU_QUEUE.push([relative(root, file)]);
  await import(pathToFileURL(file).href);
}

let passed = 0;
let total = 0;
// Seconds per test file, to keep the suite inside CI's time budget (see tools/test.mjs).
const seconds = new Map<string, number>();
for (const group of g.UVU_QUEUE) {
  const file = group[0] as string;
  for (let i = 1; i < group.length; i++) {
    const run = group[i] as () => Promise<Outcome>;
    group[i] = async () => {
      const t0 = performance.now();
      const outcome = await run();
      seconds.set(file, (seconds.get(file) ?? 0) + (performance.now() - t0) / 1000);
      passed += outcome[1];
      total += outcome[3];
      return outcome;
    };
  }
}
await exec(false);
engine.destroy();
const slowest = [...seconds].sort((a, b) => b[1] - a[1]).slice(0, 8);
console.log(`\nslowest test files: ${slowest.map(([f, s]) => `${f} ${s.toFixed(1)} s`).join(', ')}`);
console.log(`${passed} passed, ${total - passed} failed`);
process.exit(total - passed > 0 || files.length === 0 ? 1 : 0);
