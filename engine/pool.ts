// Size-bucketed reuse of GPU buffers. Tensors take storage from here and give it back on
// dispose; the counters make leaks visible (tests check `liveBytes` stays flat over long loops).
//
// Reuse right after release is safe: every dispatch is encoded in queue order, so a later kernel
// writing a recycled buffer runs after earlier kernels that read it. The one exception is
// `queue.writeBuffer`, which overtakes unsubmitted commands; `Engine.write` flushes first when the
// target buffer was used by the open batch (see `lastUsed`).

/** Size class: at least 256 bytes, otherwise the next quarter step between powers of two
 * (at most 25% waste). */
export function sizeClass(bytes: number): number {
  if (bytes <= 256) return 256;
  const p = 2 ** Math.floor(Math.log2(bytes - 1));
  const step = p / 4;
  return Math.ceil(bytes / step) * step;
}

export class BufferPool {
  /** Bytes held by live storage (tensors not yet disposed), counted by size class. */
  liveBytes = 0;
  /** Bytes sitting in free lists, ready for reuse. */
  pooledBytes = 0;
  liveBuffers = 0;
  allocations = 0;
  /** Bytes returned by the garbage-collection safety net (tensors never disposed): a leak
   * elsewhere, and what leak checks subtract, since it lands at unpredictable times. */
  finalizedBytes = 0;
  /** Of liveBytes, the bytes of caches that other storage owns (Tensor.derived: a packed conv
   * weight, say): made on first use, freed with their owner, so a leak check leaves them out. */
  derivedBytes = 0;
  /** What leak checks compare before and after: live storage less the derived caches (made and
   * dropped as their owners are read and written), plus what the finalizer returned. The
   * collector runs at any moment, and whatever it frees (an undisposed tensor, and with it the
   * caches it owned) leaves this sum unchanged, so a check is exact whatever earlier code leaked. */
  get leakCheckBytes(): number {
    return this.liveBytes - this.derivedBytes + this.finalizedBytes;
  }
  private free = new Map<number, GPUBuffer[]>();
  private freeStaging = new Map<number, GPUBuffer[]>();
  private used = new WeakMap<GPUBuffer, number>();
  private readonly device: GPUDevice;

  constructor(device: GPUDevice) {
    this.device = device;
  }

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(Math.max(bytes, 4));
    const list = this.free.get(size);
    let buffer = list?.pop();
    if (buffer) {
      this.pooledBytes -= size;
    } else {
      const max = this.device.limits.maxStorageBufferBindingSize;
      if (size > max) {
        throw new RangeError(`tensor of ${bytes} bytes exceeds this device's maxStorageBufferBindingSize (${max} bytes)`);
      }
      buffer = this.device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
      this.allocations++;
    }
    this.liveBytes += size;
    this.liveBuffers++;
    return buffer;
  }

  release(buffer: GPUBuffer, fromFinalizer = false): void {
    const size = buffer.size;
    if (fromFinalizer) this.finalizedBytes += size;
    this.liveBytes -= size;
    this.liveBuffers--;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buffer);
    this.pooledBytes += size;
  }

  acquireStaging(bytes: number): GPUBuffer {
    const size = sizeClass(bytes);
    const buffer = this.freeStaging.get(size)?.pop();
    return buffer ?? this.device.createBuffer({ label: 'readback', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  }

  releaseStaging(buffer: GPUBuffer): void {
    let list = this.freeStaging.get(buffer.size);
    if (!list) this.freeStaging.set(buffer.size, (list = []));
    list.push(buffer);
  }

  markUsed(buffer: GPUBuffer, batch: number): void {
    this.used.set(buffer, batch);
  }

  lastUsed(buffer: GPUBuffer): number {
    return this.used.get(buffer) ?? 0;
  }

  /** Destroy every pooled (free) buffer. */
  clear(): void {
    for (const list of [...this.free.values(), ...this.freeStaging.values()]) for (const b of list) b.destroy();
    this.free.clear();
    this.freeStaging.clear();
    this.pooledBytes = 0;
  }
}
