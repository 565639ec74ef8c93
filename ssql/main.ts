// `npm start`: the main job on an embedded default. It pretrains SimSiam and SSQL on a
// Fashion-MNIST subset with the small ResNet (same budget and seed), evaluates both with
// post-training quantization at every default bit setting, and prints the comparison table;
// the report lands in runs/start/. Sized to finish in about 15 minutes on 2 CPU cores without a
// GPU (lavapipe). Extra arguments are passed to `ssql compare` (e.g. --out, --subset).
import { main } from './cli.ts';

const EMBEDDED_DEFAULT = [
  'compare',
  '--data', 'fashion-mnist',
  '--model', 'small',
  '--subset', '4096',
  '--epochs', '1',
  '--batch', '128',
  '--eval-train', '2000',
  '--eval-test', '1000',
  '--out', 'runs/start',
];

process.exit(await main([...EMBEDDED_DEFAULT, ...process.argv.slice(2)]));
