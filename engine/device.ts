// The GPU device and everything that talks to it directly: the command encoder that batches
// dispatches, the uniform arena, error capture and device-loss reporting.
// Obtaining a device is platform specific: `device-node.ts` (Node, Dawn) and `initWebDevice`
// below (browsers). Everything else receives the `Engine` from `engine()`.
import { BufferPool } from './pool.ts';
import { KernelCache } from './kernels.ts';

export interface AdapterReport {
  vendor: string;
  architecture: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}

/** Thrown for WebGPU validation/out-of-memory errors and device loss. */
export class GPUError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GPUError';
  }
}

const UNIFORM_ALIGN = 256;
const UNIFORM_ARENA_BYTES = 1 << 20;
/** Dispatches per submit: long enough to amortize a submit, short enough to recycle memory. */
const MAX_DISPATCHES_PER_SUBMIT = 256;

export class Engine {
  readonly device: GPUDevice;
  readonly adapter: AdapterReport;
  readonly pool: BufferPool;
  readonly kernels: KernelCache;
  /** Increments at every submit; buffers record the batch that last used them. */
  batch = 1;
  dispatchCount = 0;
  submitCount = 0;
  private poison = false;
  /** Storage no kernel or write has touched yet, tracked while poisoning is on. */
  private unwritten = new WeakSet<GPUBuffer>();
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatchesInBatch = 0;
  private uniformArena: GPUBuffer;
  private uniformStaging = new Uint8Array(UNIFORM_ARENA_BYTES);
  private uniformUsed = 0;
  private errors: string[] = [];
  private lostReason: string | null = null;
  /** Labels of the most recent dispatches, to name the op when an asynchronous error arrives. */
  private recentOps: string[] = [];

  constructor(device: GPUDevice, adapter: AdapterReport) {
    this.device = device;
    this.adapter = adapter;
    this.pool = new BufferPool(device);
    this.kernels = new KernelCache(device);
    this.uniformArena = device.createBuffer({
      label: 'uniform-arena', size: UNIFORM_ARENA_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener('uncapturederror', (ev: Event) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      const kind = err instanceof GPUOutOfMemoryError ? 'out of GPU memory' : 'WebGPU validation error';
      this.errors.push(`${kind}: ${err.message}\n  recent ops: ${this.recentOps.slice(-4).join(' | ')}`);
    });
    device.lost.then((info) => {
      if (info.reason !== 'destroyed') this.lostReason = `${info.reason}: ${info.message}`;
      else this.lostReason = 'the device was destroyed';
    });
  }

  /** Fill new storage with NaN right before its first use (see `launch`), so elements a kernel
   * never wrote show up in tests. */
  get poisonOutputs(): boolean {
    return this.poison;
  }

  set poisonOutputs(on: boolean) {
    this.poison = on;
    if (!on) this.unwritten = new WeakSet();
  }

  /** Record fresh storage (a no-op unless poisoning is on). */
  markUnwritten(buffer: GPUBuffer): void {
    if (this.poison) this.unwritten.add(buffer);
  }

  /** Whether `buffer` was fresh; it counts as written from now on. */
  takeUnwritten(buffer: GPUBuffer): boolean {
    return this.unwritten.delete(buffer);
  }

  /** Throws if the device is lost or an asynchronous WebGPU error has been reported. */
  check(): void {
    if (this.lostReason !== null) throw new GPUError(`GPU device lost (${this.lostReason})`);
    if (this.errors.length > 0) {
      const msg = this.errors.join('\n');
      this.errors = [];
      throw new GPUError(msg);
    }
  }

  /** Stage uniform data for the next dispatch; returns the binding. */
  uniform(data: ArrayBuffer | ArrayBufferView): GPUBufferBinding {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const size = Math.ceil(bytes.byteLength / 16) * 16;
    if (this.uniformUsed + size > UNIFORM_ARENA_BYTES) this.flush();
    const offset = this.uniformUsed;
    this.uniformStaging.set(bytes, offset);
    this.uniformUsed = Math.ceil((offset + size) / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    return { buffer: this.uniformArena, offset, size };
  }

  /**
   * Encode one compute dispatch into the open pass. `label` names the op and shapes; it ends up
   * in WebGPU's error messages. `buffers` are marked as used by the current batch.
   */
  dispatch(label: string, pipeline: GPUComputePipeline, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[], workgroups: readonly [number, number, number], family = label): void {
    this.check();
    const bindGroup = this.device.createBindGroup({ label, layout, entries });
    for (const e of entries) {
      const res = e.resource as GPUBufferBinding;
      if (res.buffer && res.buffer !== this.uniformArena) this.pool.markUsed(res.buffer, this.batch);
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.profiler) {
      // Profiling: one pass per dispatch, its start and end timestamped.
      if (this.pass) this.pass.end();
      this.pass = this.encoder.beginComputePass({ timestampWrites: this.profiler.slot(this.profiler.byLabel ? label : family) });
    } else if (!this.pass) {
      this.pass = this.encoder.beginComputePass();
    }
    this.pass.setPipeline(pipeline);
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(workgroups[0], workgroups[1], workgroups[2]);
    if (this.profiler) {
      this.pass.end();
      this.pass = null;
    }
    this.recentOps.push(label);
    if (this.recentOps.length > 16) this.recentOps.shift();
    this.dispatchCount++;
    if (++this.dispatchesInBatch >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Encode a buffer-to-buffer copy (ends the open compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.check();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    if (this.pass) { this.pass.end(); this.pass = null; }
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.unwritten.delete(dst);
    this.pool.markUsed(src, this.batch);
    this.pool.markUsed(dst, this.batch);
    this.dispatchesInBatch++;
  }

  /** Submit everything encoded so far. Buffers released since the last submit become reusable. */
  flush(): void {
    if (this.encoder) {
      if (this.pass) this.pass.end();
      this.profiler?.resolve(this.encoder);
      if (this.uniformUsed > 0) this.device.queue.writeBuffer(this.uniformArena, 0, this.uniformStaging, 0, this.uniformUsed);
      this.device.queue.submit([this.encoder.finish()]);
      this.profiler?.collect();
      this.submitCount++;
    }
    this.encoder = null;
    this.pass = null;
    this.uniformUsed = 0;
    this.dispatchesInBatch = 0;
    this.batch++;
  }

  private profiler: Profiler | null = null;

  /** Start timing every dispatch on the GPU (timestamp queries), grouped by kernel family.
   * Each dispatch then gets its own compute pass, which costs a little: profile, then stop. */
  startProfile(opts: { byLabel?: boolean } = {}): void {
    if (!this.device.features.has('timestamp-query')) throw new GPUError('profiling needs the timestamp-query feature, which this adapter lacks');
    this.flush();
    this.profiler = new Profiler(this.device, opts.byLabel ?? false);
  }

  /** Stop profiling; total GPU milliseconds and dispatch counts per kernel family. */
  async stopProfile(): Promise<Map<string, { ms: number; count: number }>> {
    const p = this.profiler;
    if (!p) throw new GPUError('stopProfile() without startProfile()');
    this.flush();
    this.profiler = null;
    return p.results();
  }

  /** Submit and wait for the GPU to finish; then report any error it raised. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.check();
  }

  /** Write host data into a buffer. Flushes first if pending commands still use that buffer,
   * because `writeBuffer` takes effect before commands that are not yet submitted. */
  write(buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
    this.check();
    if (this.pool.lastUsed(buffer) === this.batch) this.flush();
    this.unwritten.delete(buffer);
    this.device.queue.writeBuffer(buffer, byteOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copy `bytes` of a buffer back to the host. */
  async read(buffer: GPUBuffer, byteOffset: number, bytes: number): Promise<ArrayBuffer> {
    const size = Math.ceil(bytes / 4) * 4;
    const staging = this.pool.acquireStaging(size);
    this.copy(buffer, byteOffset, staging, 0, size);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (e) {
      this.check();
      throw new GPUError(`reading back ${bytes} bytes failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange(0, size).slice(0, bytes);
    staging.unmap();
    this.pool.releaseStaging(staging);
    this.check();
    return out;
  }

  destroy(): void {
    this.flush();
    this.pool.clear();
    this.device.destroy();
  }
}

/** Timestamp queries for `Engine.startProfile()`: a query pair per dispatch, resolved at each
 * submit and read back asynchronously. */
class Profiler {
  private static readonly CAPACITY = 2 * MAX_DISPATCHES_PER_SUBMIT;
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  private families: string[] = [];
  private pending: Promise<void>[] = [];
  private totals = new Map<string, { ms: number; count: number }>();

  /** `byLabel`: group by each dispatch's full label (op and shapes) instead of kernel family. */
  constructor(private readonly device: GPUDevice, readonly byLabel: boolean) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: Profiler.CAPACITY });
    this.resolveBuffer = device.createBuffer({ size: Profiler.CAPACITY * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  }

  slot(family: string): GPUComputePassTimestampWrites {
    const i = this.families.length;
    this.families.push(family);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  private staging: GPUBuffer | null = null;

  resolve(encoder: GPUCommandEncoder): void {
    const n = this.families.length;
    if (n === 0) return;
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuffer, 0);
    this.staging = this.device.createBuffer({ size: 16 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, this.staging, 0, 16 * n);
  }

  collect(): void {
    const staging = this.staging;
    const families = this.families;
    this.staging = null;
    this.families = [];
    if (!staging) return;
    this.pending.push(staging.mapAsync(GPUMapMode.READ).then(() => {
      const t = new BigUint64Array(staging.getMappedRange());
      families.forEach((f, i) => {
        const ms = Number(t[2 * i + 1] - t[2 * i]) / 1e6;
        const e = this.totals.get(f) ?? { ms: 0, count: 0 };
        e.ms += ms;
        e.count++;
        this.totals.set(f, e);
      });
      staging.unmap();
      staging.destroy();
    }));
  }

  async results(): Promise<Map<string, { ms: number; count: number }>> {
    await Promise.all(this.pending);
    this.querySet.destroy();
    this.resolveBuffer.destroy();
    return this.totals;
  }
}

let current: Engine | null = null;

/** The engine that ops run on. Throws if none was initialized. */
export function engine(): Engine {
  if (!current) throw new GPUError('no GPU device: call initNodeDevice() (Node) or initWebDevice() (browser) first');
  return current;
}

/** The device's subgroup sizes, `[min, max]` as the adapter reports them, where the device has
 * the 'subgroups' feature; else null. Kernels that share values between lanes decide on it. */
export function subgroupSizes(): [number, number] | null {
  const d = engine().device;
  const info = d.adapterInfo as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
  const min = info?.subgroupMinSize;
  const max = info?.subgroupMaxSize;
  return d.features.has('subgroups') && min !== undefined && max !== undefined ? [min, max] : null;
}

/** The subgroup size where kernels can rely on one: the 'subgroups' feature with a single fixed
 * size (4 on SwiftShader, 8 on lavapipe); else 0. */
export function fixedSubgroupSize(): number {
  const s = subgroupSizes();
  return s !== null && s[0] === s[1] ? s[0] : 0;
}

/** Use an existing GPUDevice (for embedding in an app that already has one). */
export function useDevice(device: GPUDevice, adapterInfo?: GPUAdapter): Engine {
  current = new Engine(device, adapterInfo ? describeAdapter(adapterInfo) : describeDevice(device));
  return current;
}

export function describeAdapter(adapter: GPUAdapter): AdapterReport {
  const info = adapter.info;
  return {
    vendor: info.vendor, architecture: info.architecture, description: info.description,
    isFallbackAdapter: Boolean((info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter),
    features: [...adapter.features].sort(), limits: limitsRecord(adapter.limits),
  };
}

function describeDevice(device: GPUDevice): AdapterReport {
  return {
    vendor: 'unknown', architecture: 'unknown', description: 'unknown', isFallbackAdapter: false,
    features: [...device.features].sort(), limits: limitsRecord(device.limits),
  };
}

function limitsRecord(limits: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key in limits) {
    const v = (limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') out[key] = v;
  }
  return out;
}

/** Limits we ask for: the adapter's own storage-buffer limits, which defaults cap lower. */
export function requiredLimits(adapter: GPUAdapter): Record<string, number> {
  const l = adapter.limits;
  return {
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxStorageBuffersPerShaderStage: Math.min(l.maxStorageBuffersPerShaderStage, 10),
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
  };
}

/** Browser: obtain a device from navigator.gpu. */
export async function initWebDevice(gpu: GPU = navigator.gpu): Promise<Engine> {
  if (!gpu) throw new GPUError('WebGPU is not available in this browser (navigator.gpu is missing)');
  return initFromGPU(gpu);
}

export async function initFromGPU(gpu: GPU): Promise<Engine> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) throw new GPUError('no WebGPU adapter available (requestAdapter() returned null)');
  const features = (['timestamp-query', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits: requiredLimits(adapter), requiredFeatures: features });
  current = new Engine(device, describeAdapter(adapter));
  return current;
}
