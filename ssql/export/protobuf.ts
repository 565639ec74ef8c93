// A minimal Protocol Buffers encoder: enough to write ONNX models (./onnx.ts) without a
// dependency. Fields are written in the order they are added; repeated scalars unpacked
// (proto2's default, which every parser accepts). Platform independent.

export class ProtoWriter {
  private buf = new Uint8Array(256);
  private len = 0;

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  private byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  private rawVarint(v: bigint): void {
    // int64 values below zero are written as their 64-bit two's complement (10 bytes).
    let u = v < 0n ? v + (1n << 64n) : v;
    do {
      const b = Number(u & 0x7fn);
      u >>= 7n;
      this.byte(u > 0n ? b | 0x80 : b);
    } while (u > 0n);
  }

  private key(field: number, wire: number): void {
    if (!Number.isInteger(field) || field < 1) throw new RangeError(`protobuf: field number ${field} is not a positive integer`);
    this.rawVarint(BigInt(field * 8 + wire));
  }

  /** int32/int64/uint64/enum/bool (wire type 0). */
  int(field: number, v: number | bigint): this {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError(`protobuf: field ${field}: ${v} is not an integer`);
    this.key(field, 0);
    this.rawVarint(BigInt(v));
    return this;
  }

  /** float (wire type 5, little-endian IEEE 754 single). */
  float(field: number, v: number): this {
    this.key(field, 5);
    this.reserve(4);
    new DataView(this.buf.buffer).setFloat32(this.len, v, true);
    this.len += 4;
    return this;
  }

  /** bytes (wire type 2). */
  bytes(field: number, data: Uint8Array): this {
    this.key(field, 2);
    this.rawVarint(BigInt(data.length));
    this.reserve(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** An embedded message (wire type 2). */
  message(field: number, m: ProtoWriter): this {
    return this.bytes(field, m.finish());
  }

  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}
