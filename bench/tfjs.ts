// TF.js's WebGPU backend on the same Dawn adapter, as a side-by-side baseline (a bench-only
// dependency: @tensorflow/tfjs-core + @tensorflow/tfjs-backend-webgpu). TF.js runs its own
// device; its convs use NHWC, its native and fastest layout.
import { nodeGPU } from '../engine/device-node.ts';

interface ConvShape { N: number; Cin: number; H: number; Cout: number; k: number; stride: number }

export interface TfjsConv {
  available: boolean;
  reason: string;
  /** Median ms of `op` ('conv2d_fwd' | 'conv2d_input_grad' | 'conv2d_weight_grad'), timed to GPU completion. */
  time(op: string, c: ConvShape, pad: number, runs: number): Promise<number>;
  dispose(): void;
}

// Minimal structural types for the parts of TF.js used here.
interface TfTensor { dispose(): void }
interface TfBackend { submitQueue(): void; endComputePassEncoder(): void; ensureCommandEncoderReady(): void; device: GPUDevice }
interface Tf {
  setBackend(name: string): Promise<boolean>;
  ready(): Promise<void>;
  backend(): unknown;
  zeros(shape: number[]): TfTensor;
  conv2d(x: TfTensor, f: TfTensor, strides: number, pad: [[number, number], [number, number], [number, number], [number, number]] | number): TfTensor;
  engine(): { runKernel(name: string, inputs: Record<string, TfTensor>, attrs: Record<string, unknown>): TfTensor };
  tidy<T>(fn: () => T): T;
}

export async function tfjsConv(): Promise<TfjsConv> {
  let tf: Tf;
  try {
    const g = globalThis as unknown as { navigator?: unknown };
    if (!g.navigator || !(g.navigator as { gpu?: GPU }).gpu) {
      Object.defineProperty(globalThis, 'navigator', { value: { gpu: nodeGPU(), userAgent: 'node' }, configurable: true });
    }
    tf = (await import('@tensorflow/tfjs-core' as string)) as Tf;
    await import('@tensorflow/tfjs-backend-webgpu' as string);
    if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") failed');
    await tf.ready();
  } catch (e) {
    const reason = `TF.js WebGPU unavailable: ${(e as Error).message.split('\n')[0]}`;
    return { available: false, reason, time: async () => NaN, dispose: () => {} };
  }
  const backend = tf.backend() as TfBackend;
  return {
    available: true,
    reason: '',
    async time(op, c, pad, runs) {
      const OH = Math.floor((c.H + 2 * pad - c.k) / c.stride) + 1;
      const x = tf.zeros([c.N, c.H, c.H, c.Cin]);
      const f = tf.zeros([c.k, c.k, c.Cin, c.Cout]);
      const dy = tf.zeros([c.N, OH, OH, c.Cout]);
      const padArg: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [pad, pad], [pad, pad], [0, 0]];
      const run = () => tf.tidy(() => {
        if (op === 'conv2d_fwd') return tf.conv2d(x, f, c.stride, padArg);
        if (op === 'conv2d_input_grad') {
          return tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: f }, { strides: c.stride, pad: padArg, dataFormat: 'NHWC', inputShape: [c.N, c.H, c.H, c.Cin] });
        }
        return tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { strides: c.stride, pad: padArg, dataFormat: 'NHWC', filterShape: [c.k, c.k, c.Cin, c.Cout] });
      });
      const once = async () => {
        const t0 = performance.now();
        const out = run();
        backend.ensureCommandEncoderReady();
        backend.endComputePassEncoder();
        backend.submitQueue();
        await backend.device.queue.onSubmittedWorkDone();
        const ms = performance.now() - t0;
        out.dispose();
        return ms;
      };
      await once();
      const samples: number[] = [];
      for (let i = 0; i < runs; i++) samples.push(await once());
      for (const t of [x, f, dy]) t.dispose();
      samples.sort((a, b) => a - b);
      return samples[Math.floor(samples.length / 2)];
    },
    dispose() {},
  };
}
