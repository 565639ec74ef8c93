// Node only: `ssql import FILE.pth --out X.safetensors`, the file side of ./import.ts. The
// output is written to a temporary name and renamed (./files-node.ts).
import { readFileSync } from 'node:fs';
import { saveSafetensors } from './files-node.ts';
import { importTorchCheckpoint } from './import.ts';
import type { ImportReport } from './import.ts';

/** Convert a torch.save checkpoint at `path` to safetensors at `outPath`; returns the report. */
export function importPth(path: string, outPath: string): ImportReport {
  const { tensors, metadata, report } = importTorchCheckpoint(readFileSync(path), path);
  saveSafetensors(outPath, tensors, metadata);
  return report;
}
