// Node only: obtains a GPUDevice through Dawn (npm `webgpu`). The browser bundle never imports
// this file.
import { create, globals } from 'webgpu';
import { Engine, initFromGPU } from './device.ts';

export { defaultTuningFile, loadTuningFile, saveTuningFile, startNodeTuning } from './tuning-node.ts';
export type { NodeTuning } from './tuning-node.ts';

Object.assign(globalThis, globals);
// Dawn crashes the process if the object `create()` returns is garbage-collected while a device
// is alive, so it lives in a module-level constant for the life of the process.
let dawn: GPU | null = null;

export async function initNodeDevice(): Promise<Engine> {
  return initFromGPU(nodeGPU());
}

/** The Dawn GPU object (for side-by-side benchmarks that need their own device on it). */
export function nodeGPU(): GPU {
  if (!dawn) dawn = create([]) as GPU;
  return dawn;
}
