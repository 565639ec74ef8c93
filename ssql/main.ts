// `npm start`: the main job. Until SSQL training lands this is the engine self-check: it
// reports the adapter, runs a matmul (and its gradient) on the GPU and compares both with a
// float64 CPU reference. Node only.
import { initNodeDevice } from '../engine/device-node.ts';
import { Tensor, matmul, sum } from '../engine/index.ts';

const M = 67, K = 129, N = 45; // deliberately not multiples of any tile
const e = await initNodeDevice();
const a = e.adapter;
console.log(`adapter: ${a.description || 'unknown'} (vendor ${a.vendor || '?'}, ${a.architecture || '?'}${a.isFallbackAdapter ? ', fallback' : ''})`);
console.log(`limits: maxStorageBufferBindingSize ${a.limits.maxStorageBufferBindingSize}, maxComputeInvocationsPerWorkgroup ${a.limits.maxComputeInvocationsPerWorkgroup}, features: ${a.features.join(', ')}`);

let seed = 7;
const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
const A = Float32Array.from({ length: M * K }, random);
const B = Float32Array.from({ length: K * N }, random);

const ta = Tensor.fromArray(A, [M, K], { requiresGrad: true });
const tb = Tensor.fromArray(B, [K, N]);
const t0 = performance.now();
const c = matmul(ta, tb);
const loss = sum(c);
loss.backward();
const [gpuC, gpuGrad] = [await c.toArray(), await ta.grad!.toArray()];
const ms = performance.now() - t0;

// float64 reference: C = A B, dsum(C)/dA[i][k] = sum_j B[k][j]
let worst = 0;
for (let i = 0; i < M; i++) {
  for (let j = 0; j < N; j++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
    worst = Math.max(worst, Math.abs(gpuC[i * N + j] - s) / (1 + Math.abs(s)));
  }
}
let worstGrad = 0;
for (let k = 0; k < K; k++) {
  let s = 0;
  for (let j = 0; j < N; j++) s += B[k * N + j];
  for (let i = 0; i < M; i++) worstGrad = Math.max(worstGrad, Math.abs(gpuGrad[i * K + k] - s) / (1 + Math.abs(s)));
}
const ok = worst < 1e-5 && worstGrad < 1e-5;
console.log(`matmul ${M}x${K} @ ${K}x${N} and its gradient on the GPU in ${ms.toFixed(1)} ms (includes pipeline compiles)`);
console.log(`max relative error vs float64 CPU: output ${worst.toExponential(2)}, gradient ${worstGrad.toExponential(2)} -> ${ok ? 'OK' : 'MISMATCH'}`);
e.destroy();
process.exit(ok ? 0 : 1);
