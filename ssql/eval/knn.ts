// kNN top-1 on un-augmented features (both protocols, optional): cosine similarity, k = 200,
// votes weighted by exp(sim / 0.1) (the InstDisc / SimSiam kNN monitor).
import { Tensor, keep, matmul, noGrad } from '../../engine/index.ts';
import { checkFeatures } from './features.ts';
import type { Features } from './features.ts';
import { numClasses } from './images.ts';

export interface KnnOptions {
  /** Neighbours (default 200; at most the train set size). */
  k?: number;
  /** Vote weight exp(sim / temperature) (default 0.1). */
  temperature?: number;
  numClasses?: number;
  /** Test rows per similarity matmul (default 512) and train rows per chunk (default 8192). */
  testChunk?: number;
  trainChunk?: number;
}

function l2Normalized(f: Features): Float32Array {
  const out = new Float32Array(f.data.length);
  for (let i = 0; i < f.count; i++) {
    const o = i * f.dim;
    let s = 0;
    for (let d = 0; d < f.dim; d++) s += f.data[o + d] * f.data[o + d];
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < f.dim; d++) out[o + d] = f.data[o + d] * inv;
  }
  return out;
}

/**
 * kNN top-1 (%): cosine similarities (L2-normalized features, matmul on the GPU in chunks),
 * the k most similar train samples vote for their labels with weight exp(sim / T) (the
 * InstDisc / SimSiam kNN monitor); ties go to the lower class index.
 */
export async function knnTop1(trainFeatures: Features, trainLabels: ArrayLike<number>, testFeatures: Features, testLabels: ArrayLike<number>, opts: KnnOptions = {}): Promise<number> {
  checkFeatures('train features', trainFeatures, trainLabels);
  checkFeatures('test features', testFeatures, testLabels);
  const D = trainFeatures.dim;
  if (D !== testFeatures.dim) throw new RangeError(`train features have ${D} dims, test features ${testFeatures.dim}`);
  const kReq = opts.k ?? 200;
  const T = opts.temperature ?? 0.1;
  if (!Number.isInteger(kReq) || kReq < 1) throw new RangeError(`kNN: k must be a positive integer, got ${kReq}`);
  if (!(T > 0)) throw new RangeError(`kNN: temperature must be positive, got ${T}`);
  const Ntr = trainFeatures.count;
  const Nte = testFeatures.count;
  const k = Math.min(kReq, Ntr);
  const classes = opts.numClasses ?? numClasses(Array.from(trainLabels).slice(0, Ntr), Array.from(testLabels).slice(0, Nte));
  const testChunk = opts.testChunk ?? 512;
  const trainChunk = opts.trainChunk ?? 8192;
  const train = l2Normalized(trainFeatures);
  const test = l2Normalized(testFeatures);
  // The train set on the GPU, in chunks (kept for the whole run).
  const trainParts: { from: number; t: Tensor }[] = [];
  let hits = 0;
  try {
    for (let from = 0; from < Ntr; from += trainChunk) {
      const to = Math.min(from + trainChunk, Ntr);
      // Transposed ([D, cols]): the matmul's vectorized layout (faster than transB).
      const cols = to - from;
      const tt = new Float32Array(D * cols);
      for (let c = 0; c < cols; c++) for (let d = 0; d < D; d++) tt[d * cols + c] = train[(from + c) * D + d];
      trainParts.push({ from, t: keep(Tensor.fromArray(tt, [D, cols])) });
    }
    // Per test row of a chunk: a min-heap of the k best (similarity, train index).
    const heapSim = new Float32Array(testChunk * k);
    const heapIdx = new Int32Array(testChunk * k);
    const heapLen = new Int32Array(testChunk);
    const votes = new Float64Array(classes);
    for (let t0 = 0; t0 < Nte; t0 += testChunk) {
      const t1 = Math.min(t0 + testChunk, Nte);
      const rows = t1 - t0;
      heapLen.fill(0);
      const q = Tensor.fromArray(test.subarray(t0 * D, t1 * D), [rows, D]);
      try {
        for (const part of trainParts) {
          const cols = part.t.shape[1];
          const simT = noGrad(() => matmul(q, part.t));
          let sim: ArrayLike<number>;
          try {
            sim = await simT.toArray();
          } finally {
            simT.dispose();
          }
          for (let r = 0; r < rows; r++) {
            const base = r * k;
            const srow = r * cols;
            for (let c = 0; c < cols; c++) {
              const v = sim[srow + c];
              if (heapLen[r] < k) heapPush(heapSim, heapIdx, base, heapLen[r]++, v, part.from + c);
              else if (v > heapSim[base]) heapReplaceTop(heapSim, heapIdx, base, k, v, part.from + c);
            }
          }
        }
      } finally {
        q.dispose();
      }
      for (let r = 0; r < rows; r++) {
        votes.fill(0);
        const base = r * k;
        for (let j = 0; j < heapLen[r]; j++) votes[trainLabels[heapIdx[base + j]]] += Math.exp(heapSim[base + j] / T);
        let best = 0;
        for (let c = 1; c < classes; c++) if (votes[c] > votes[best]) best = c;
        if (best === testLabels[t0 + r]) hits++;
      }
    }
  } finally {
    for (const p of trainParts) p.t.dispose();
  }
  return (100 * hits) / Nte;
}

function heapPush(sim: Float32Array, idx: Int32Array, base: number, len: number, v: number, id: number): void {
  let i = len;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (sim[base + parent] <= v) break;
    sim[base + i] = sim[base + parent];
    idx[base + i] = idx[base + parent];
    i = parent;
  }
  sim[base + i] = v;
  idx[base + i] = id;
}

function heapReplaceTop(sim: Float32Array, idx: Int32Array, base: number, len: number, v: number, id: number): void {
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= len) break;
    const r = l + 1;
    const c = r < len && sim[base + r] < sim[base + l] ? r : l;
    if (sim[base + c] >= v) break;
    sim[base + i] = sim[base + c];
    idx[base + i] = idx[base + c];
    i = c;
  }
  sim[base + i] = v;
  idx[base + i] = id;
}
