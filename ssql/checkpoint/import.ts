// Importing a PyTorch checkpoint (torch.save's .pth / .pth.tar) as an ssql-webgpu checkpoint:
// read it without Python (./pth.ts), map its names to ours (./names.ts), keep what fits the
// architecture its shapes describe, and say what was unused and what is missing.
// Platform independent (the browser demo can import an uploaded .pth); Node's file handling
// is in ./import-node.ts.
import { readPth } from './pth.ts';
import type { SafeTensor } from './safetensors.ts';
import { checkAgainst, expectedState, inferArchitecture, mapStateDictNames } from './names.ts';
import type { Architecture, NameMapping, UnusedKey } from './names.ts';
import { RESNET18, RESNET34, RESNET50, SMALL_RESNET, TINY_RESNET } from '../models/resnet.ts';

export const IMPORT_FORMAT = 'ssql-webgpu-import-1';

export interface ImportReport {
  source: string;
  layout: NameMapping['layout'];
  /** Where the state dict was in the file ('' for the saved object itself, e.g. 'state_dict'). */
  stateDictPath: string;
  architecture: Architecture;
  /** The preset with this backbone structure ('resnet18', 'small' ...), if any. */
  model?: string;
  /** Tensors loaded under our names. */
  loaded: number;
  unused: UnusedKey[];
  /** Our names that the checkpoint does not provide (e.g. the projector and predictor of a
   * torchvision or MoCo checkpoint: they keep their initialization). */
  missing: string[];
  /** Tensors outside the state dict (optimizer state ...), not imported. */
  otherTensors: string[];
  /** Plain top-level values of the file (epoch, arch ...), for the record. */
  values: Record<string, string | number | boolean | null>;
}

const PRESETS = { tiny: TINY_RESNET, small: SMALL_RESNET, resnet18: RESNET18, resnet34: RESNET34, resnet50: RESNET50 };

function presetOf(arch: Architecture): string | undefined {
  const b = arch.backbone;
  const same = (x: number[], y: number[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return Object.entries(PRESETS).find(([, p]) => p.block === b.block && same(p.layers, b.layers) && same(p.widths, b.widths))?.[0];
}

export interface ImportedCheckpoint {
  /** Tensors under ssql-webgpu's names (SimSiamNet's state dict, or the part of it present). */
  tensors: Record<string, SafeTensor>;
  /** safetensors metadata: format, source, layout, architecture (JSON), model preset. */
  metadata: Record<string, string>;
  report: ImportReport;
}

/** Read a torch.save file and map it onto ssql-webgpu's model (see the module comment). */
export function importTorchCheckpoint(bytes: Uint8Array, source: string): ImportedCheckpoint {
  const pth = readPth(bytes, source);
  const mapping = mapStateDictNames(pth.tensors);
  const architecture = inferArchitecture(mapping.tensors, source);
  const checked = checkAgainst(mapping, expectedState(architecture));
  const model = presetOf(architecture);
  const values = Object.fromEntries(Object.entries(pth.values).filter(([k]) => !k.includes('.')));
  const report: ImportReport = {
    source, layout: mapping.layout, stateDictPath: pth.stateDictPath, architecture, model,
    loaded: Object.keys(checked.tensors).length, unused: checked.unused, missing: checked.missing,
    otherTensors: pth.otherTensors, values,
  };
  const metadata: Record<string, string> = {
    format: IMPORT_FORMAT,
    imported_from: source,
    layout: mapping.layout,
    architecture: JSON.stringify(architecture),
  };
  if (model) metadata.model = model;
  return { tensors: checked.tensors, metadata, report };
}

/** The report as a few human-readable lines (unused keys grouped by reason). */
export function formatImportReport(r: ImportReport): string {
  const b = r.architecture.backbone;
  const lines = [
    `${r.source}: ${r.layout} layout${r.stateDictPath ? ` (state dict under '${r.stateDictPath}')` : ''}`,
    `  backbone: ${b.block} blocks ${b.layers.join('/')}, widths ${b.widths.join('/')}, ${b.inChannels} input channels${r.model ? ` (the '${r.model}' model)` : ''}`
      + `${r.architecture.projDim !== undefined ? `; projector ${r.architecture.projDim}` : ''}${r.architecture.predHidden !== undefined ? `; predictor hidden ${r.architecture.predHidden}` : ''}`,
    `  loaded ${r.loaded} tensors`,
  ];
  const byReason = new Map<string, string[]>();
  for (const u of r.unused) byReason.set(u.reason, [...(byReason.get(u.reason) ?? []), u.key]);
  for (const [reason, keys] of byReason) {
    lines.push(`  unused: ${keys.length} key${keys.length > 1 ? 's' : ''}: ${reason}: ${keys.slice(0, 3).join(', ')}${keys.length > 3 ? `, ... (${keys.length - 3} more)` : ''}`);
  }
  if (r.missing.length) lines.push(`  missing (keep their initialization): ${r.missing.length}: ${r.missing.slice(0, 4).join(', ')}${r.missing.length > 4 ? ', ...' : ''}`);
  if (r.otherTensors.length) lines.push(`  not imported: ${r.otherTensors.length} tensors outside the state dict (${r.otherTensors.slice(0, 2).join(', ')}${r.otherTensors.length > 2 ? ', ...' : ''})`);
  return lines.join('\n');
}
