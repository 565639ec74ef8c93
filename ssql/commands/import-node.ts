// `ssql import FILE.pth --out ckpt.safetensors`: convert a PyTorch checkpoint (torch.save zip;
// the official SSQL, SimSiam, MoCo, torchvision layouts) to an ssql-webgpu checkpoint, printing
// what was loaded, unused and missing. No GPU needed. The output is written to a temporary name,
// then renamed.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, formatHelp, parseArgs } from '../cli-args.ts';
import type { OptionSpec } from '../cli-args.ts';
import { importPth } from '../checkpoint/import-node.ts';
import { formatImportReport } from '../checkpoint/import.ts';
import type { Command } from './command.ts';

const OPTIONS: Record<string, OptionSpec> = {
  out: { type: 'string', help: 'the safetensors checkpoint to write (required)' },
  json: { type: 'boolean', help: 'print the report as JSON' },
  help: { type: 'boolean', help: 'show this help' },
};

export const IMPORT_COMMAND: Command = {
  name: 'import',
  summary: 'convert a PyTorch checkpoint (.pth/.pth.tar) to safetensors, reporting unused and missing tensors',
  async run(argv) {
    const a = parseArgs(argv, OPTIONS);
    if (a.help) {
      process.stdout.write(formatHelp('usage: ssql import FILE.pth --out CKPT.safetensors [--json]', IMPORT_COMMAND.summary, OPTIONS));
      return 0;
    }
    if (a._.length !== 1) throw new UsageError(`give exactly one PyTorch checkpoint to import, got ${a._.length ? a._.map((p) => `'${p}'`).join(', ') : 'none'}`);
    const [input] = a._;
    if (!a.out) throw new UsageError('--out CKPT.safetensors is required');
    const out = a.out as string;
    if (!existsSync(input)) throw new UsageError(`checkpoint not found: ${input}`);
    if (resolve(input) === resolve(out)) throw new UsageError(`--out ${out} would overwrite the checkpoint being imported`);
    const report = importPth(input, out);
    if (a.json) process.stdout.write(JSON.stringify({ ...report, out }) + '\n');
    else process.stdout.write(`${formatImportReport(report)}\nwrote ${out}\n`);
    return 0;
  },
};
