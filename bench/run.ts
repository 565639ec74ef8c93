// `npm run bench [-- NAME ...] [--quick]`: runs bench/NAME.ts (all when none named), prints a
// table per benchmark and writes bench/results/NAME.json.
import { initNodeDevice } from '../engine/device-node.ts';
import { printTable, writeResults } from './harness.ts';
import type { BenchOptions, BenchRecord } from './harness.ts';

const ALL = ['matmul', 'conv', 'bn', 'layout', 'quant', 'train', 'browser'];
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const names = args.filter((a) => !a.startsWith('--'));
for (const n of names) {
  if (!ALL.includes(n)) {
    console.error(`unknown benchmark '${n}'; available: ${ALL.join(', ')}`);
    process.exit(2);
  }
}
const e = await initNodeDevice();
console.log(`adapter: ${e.adapter.description}`);
for (const name of names.length ? names : ALL) {
  const mod = (await import(`./${name}.ts`)) as { run: (o: BenchOptions) => Promise<BenchRecord[]> };
  const records = await mod.run({ quick });
  printTable(name, records);
  console.log(`wrote ${writeResults(name, records)}`);
}
e.destroy();
