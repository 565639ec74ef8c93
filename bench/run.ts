// `npm run bench [-- NAME ...] [--quick] [--only TEXT]`: runs bench/NAME.ts (all when none named), prints a
// table per benchmark and writes bench/results/NAME.json (NAME.quick.json with --quick; nothing
// with --only: harness.ts resultsFileName).
import { initNodeDevice, startNodeTuning } from '../engine/device-node.ts';
import { printTable, resultsFileName, writeResults } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';

const ALL = ['matmul', 'conv', 'elementwise', 'bn', 'quant', 'layout', 'train', 'browser'];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
// --only TEXT: only the cases whose name contains TEXT (a single slow case, say).
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
if (onlyAt >= 0 && (only === undefined || only.startsWith('--'))) {
  console.error('--only needs the text of the case names to run, e.g. --only "resnet18"');
  process.exit(2);
}
const names = args.filter((a, i) => !a.startsWith('--') && (onlyAt < 0 || i !== onlyAt + 1));
for (const n of names) {
  if (!ALL.includes(n)) {
    console.error(`unknown benchmark '${n}'; available: ${ALL.join(', ')}`);
    process.exit(2);
  }
}
const e = await initNodeDevice();
// Kernel variants as training picks them: measured once per adapter and shape, then cached
// (engine/tuning-node.ts; SSQL_TUNING=off for the deterministic rules).
const tuning = startNodeTuning();
console.log(`adapter: ${e.adapter.description}; kernel tuning ${tuning.enabled ? `on (${tuning.file})` : 'off'}`);
for (const name of names.length ? names : ALL) {
  const mod = (await import(`./${name}.ts`)) as { run: (o: BenchOptions) => Promise<BenchRecord[]> };
  const opts: BenchOptions = { quick, only };
  const records = await mod.run(opts);
  printTable(name, records);
  const file = resultsFileName(name, opts);
  console.log(file ? `wrote ${writeResults(name, file, records)}` : '(--only: a partial run, results not written)');
}
tuning.save();
e.destroy();
