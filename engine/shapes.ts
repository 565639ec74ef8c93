// Shape arithmetic: element counts, strides, broadcasting, axis lists. Plain functions on
// number arrays that every layer of the engine uses; this module imports nothing.

export type Shape = readonly number[];

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeString(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** Throws unless every dimension is a non-negative integer; `what` names the caller. */
export function checkShape(shape: Shape, what: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new TypeError(`${what}: invalid shape ${shapeString(shape)} (dimensions must be non-negative integers)`);
  }
}

/** Resolve one -1 entry and check that the element count matches. */
export function resolveShape(shape: Shape, size: number, what: string): number[] {
  const out = [...shape];
  const free = out.indexOf(-1);
  if (out.lastIndexOf(-1) !== free) throw new RangeError(`cannot reshape ${what} (${size} elements) to ${shapeString(shape)}: only one dimension can be -1`);
  if (free >= 0) {
    const known = sizeOf(out.filter((_, i) => i !== free));
    if (known === 0 || size % known !== 0) throw new RangeError(`cannot reshape ${what} (${size} elements) to ${shapeString(shape)}`);
    out[free] = size / known;
  }
  checkShape(out, 'reshape');
  if (sizeOf(out) !== size) throw new RangeError(`cannot reshape ${what} (${size} elements) to ${shapeString(shape)}`);
  return out;
}

/** Row-major strides of a contiguous tensor of `shape`. */
export function contiguousStrides(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** NumPy broadcasting of two shapes; `op` names the caller in the error. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new RangeError(`${op}: shapes ${shapeString(a)} and ${shapeString(b)} cannot be broadcast together (dimension ${i}: ${da} vs ${db})`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Strides that read `shape` (right-aligned) as if broadcast to `outShape`. */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const own = contiguousStrides(shape);
  return outShape.map((_, i) => {
    const j = i - (outShape.length - shape.length);
    return j < 0 || shape[j] === 1 ? 0 : own[j];
  });
}

/** Normalize an axis list (negative axes count from the end; undefined means all axes), sorted. */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number, op: string): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = list.map((a) => {
    const n = a < 0 ? a + rank : a;
    if (!Number.isInteger(n) || n < 0 || n >= rank) throw new RangeError(`${op}: axis ${a} is out of range for a tensor of rank ${rank}`);
    return n;
  });
  if (new Set(out).size !== out.length) throw new RangeError(`${op}: repeated axis in [${list.join(', ')}]`);
  return out.sort((x, y) => x - y);
}
