// Node only: write an export's files (each to a temporary name, then renamed).
import { saveSafetensors, writeFileAtomic } from '../checkpoint/files-node.ts';
import type { ExportModel } from './model.ts';
import { toOnnx } from './onnx.ts';
import type { OnnxOptions } from './onnx.ts';
import { packedWeights } from './packed.ts';

/** Write the ONNX model and/or the packed integer weights of a captured backbone. */
export function saveExport(model: ExportModel, paths: { onnx?: string; weights?: string }, opts: OnnxOptions = {}): void {
  if (paths.onnx) writeFileAtomic(paths.onnx, toOnnx(model, opts));
  if (paths.weights) {
    const { tensors, metadata } = packedWeights(model);
    saveSafetensors(paths.weights, tensors, metadata);
  }
}
