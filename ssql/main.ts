// `npm start`: the main job on an embedded default, sized to finish in about 15 minutes on 2 CPU
// cores without a GPU (lavapipe). It pretrains SimSiam and SSQL on 4,096 Fashion-MNIST images for
// one epoch with the small ResNet (same budget and initialization), evaluates both and the
// untrained backbone with post-training quantization at FP, 4w4a and 2w4a (a 3,000-image probe
// with kNN, on 5,000 test images), and prints the report: the table, each method's gain over the
// untrained backbone, and a reading of what this budget resolves and what it does not (with one
// seed and a few thousand images it resolves only large differences; the experiment in the
// README uses three seeds and the full test set). The report lands in runs/start/; running it
// again continues an interrupted run. Extra arguments are passed to `ssql compare` (e.g. --out,
// --subset, --seeds 0,1,2).
import { main } from './cli.ts';

const EMBEDDED_DEFAULT = [
  'compare',
  '--data', 'fashion-mnist',
  '--model', 'small',
  '--subset', '4096',
  '--epochs', '1',
  '--batch', '128',
  '--settings', 'fp,4w4a,2w4a',
  '--eval-train', '3000',
  '--eval-test', '5000',
  '--out', 'runs/start',
];

process.exit(await main([...EMBEDDED_DEFAULT, ...process.argv.slice(2)]));
