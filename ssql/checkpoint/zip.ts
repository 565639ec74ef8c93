// Reading the zip archives that torch.save writes (PyTorch >= 1.6). PyTorch's writer stores
// every record uncompressed (method 0), padding each local header's extra field so the data
// starts 64-byte aligned, and switches to zip64 records for large archives. This reader takes
// exactly that: stored entries (zip64 or not) with their CRC-32 checked; a compressed or
// encrypted entry is refused with an error naming it, since torch.save never writes one.
// Platform independent and synchronous; every offset read is checked against the buffer, so
// a truncated or corrupt file gives an error naming what is wrong and where.

export class ZipFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipFormatError';
  }
}

export interface ZipEntry {
  name: string;
  /** 0: stored (the only method read). */
  method: number;
  size: number;
  compressedSize: number;
  crc32: number;
  /** Offset of the entry's local file header. */
  headerOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

export class ZipArchive {
  readonly entries: ReadonlyMap<string, ZipEntry>;
  private readonly view: DataView;

  constructor(readonly bytes: Uint8Array, readonly source = 'zip') {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.entries = this.readCentralDirectory();
  }

  /** Entry names in the archive's order. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's bytes (a view into the archive, CRC-checked). */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw new ZipFormatError(`${this.source}: no entry '${name}' in the archive`);
    if (e.method !== 0) {
      throw new ZipFormatError(`${this.source}: entry '${name}' is compressed (zip method ${e.method}); torch.save writes only stored entries, so this file was re-packed by another tool: unzip it and zip it again without compression (zip -0), or re-save it with torch.save`);
    }
    const h = e.headerOffset;
    this.need(h, 30, `local header of '${name}'`);
    if (this.view.getUint32(h, true) !== SIG_LOCAL) throw new ZipFormatError(`${this.source}: no local file header for '${name}' at offset ${h}: corrupt archive`);
    const start = h + 30 + this.view.getUint16(h + 26, true) + this.view.getUint16(h + 28, true);
    this.need(start, e.size, `data of '${name}'`);
    const data = this.bytes.subarray(start, start + e.size);
    const crc = crc32(data);
    if (crc !== e.crc32) {
      throw new ZipFormatError(`${this.source}: entry '${name}' (offset ${start}, ${e.size} bytes) fails its CRC-32 check (0x${hex(crc)}, archive says 0x${hex(e.crc32)}): the file is corrupt`);
    }
    return data;
  }

  private need(offset: number, length: number, what: string): void {
    if (offset < 0 || length < 0 || offset + length > this.bytes.length) {
      throw new ZipFormatError(`${this.source}: ${what} (offset ${offset}, ${length} bytes) lies past the end of the file (${this.bytes.length} bytes): truncated`);
    }
  }

  private findEocd(): number {
    const v = this.view;
    const lowest = Math.max(0, this.bytes.length - EOCD_SIZE - MAX_COMMENT);
    for (let at = this.bytes.length - EOCD_SIZE; at >= lowest; at--) {
      if (v.getUint32(at, true) === SIG_EOCD && at + EOCD_SIZE + v.getUint16(at + 20, true) === this.bytes.length) return at;
    }
    throw new ZipFormatError(`${this.source}: no zip end-of-central-directory record (${this.bytes.length} bytes): the file is truncated, or not a zip archive`);
  }

  private readCentralDirectory(): Map<string, ZipEntry> {
    const v = this.view;
    const eocd = this.findEocd();
    let count = v.getUint16(eocd + 10, true);
    let size = v.getUint32(eocd + 12, true);
    let offset = v.getUint32(eocd + 16, true);
    if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
      const loc = eocd - 20;
      if (loc < 0 || v.getUint32(loc, true) !== SIG_EOCD64_LOCATOR) throw new ZipFormatError(`${this.source}: zip64 archive without its zip64 locator (expected at offset ${loc}): corrupt`);
      const rec = this.u64(loc + 8, 'zip64 end-of-central-directory offset');
      this.need(rec, 56, 'zip64 end-of-central-directory record');
      if (v.getUint32(rec, true) !== SIG_EOCD64) throw new ZipFormatError(`${this.source}: no zip64 end-of-central-directory record at offset ${rec}: corrupt`);
      count = this.u64(rec + 32, 'zip64 entry count');
      size = this.u64(rec + 40, 'zip64 central directory size');
      offset = this.u64(rec + 48, 'zip64 central directory offset');
    }
    this.need(offset, size, 'central directory');
    const entries = new Map<string, ZipEntry>();
    let at = offset;
    for (let i = 0; i < count; i++) {
      this.need(at, 46, `central directory entry ${i}`);
      if (v.getUint32(at, true) !== SIG_CENTRAL) throw new ZipFormatError(`${this.source}: central directory entry ${i} at offset ${at} has a bad signature: corrupt`);
      const flags = v.getUint16(at + 8, true);
      const method = v.getUint16(at + 10, true);
      const crc = v.getUint32(at + 16, true);
      let compressedSize = v.getUint32(at + 20, true);
      let size32 = v.getUint32(at + 24, true);
      const nameLen = v.getUint16(at + 28, true);
      const extraLen = v.getUint16(at + 30, true);
      const commentLen = v.getUint16(at + 32, true);
      let headerOffset = v.getUint32(at + 42, true);
      this.need(at + 46, nameLen + extraLen + commentLen, `central directory entry ${i}'s name and extra fields`);
      const name = new TextDecoder().decode(this.bytes.subarray(at + 46, at + 46 + nameLen));
      if (flags & 1) throw new ZipFormatError(`${this.source}: entry '${name}' is encrypted; torch.save never encrypts`);
      // zip64 extended information: the 64-bit values, in this order, of the fields set to ~0.
      let ex = at + 46 + nameLen;
      const exEnd = ex + extraLen;
      while (ex + 4 <= exEnd) {
        const id = v.getUint16(ex, true);
        const len = v.getUint16(ex + 2, true);
        if (id === 0x0001) {
          let p = ex + 4;
          if (size32 === 0xffffffff) { size32 = this.u64(p, `zip64 size of '${name}'`); p += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = this.u64(p, `zip64 compressed size of '${name}'`); p += 8; }
          if (headerOffset === 0xffffffff) { headerOffset = this.u64(p, `zip64 offset of '${name}'`); p += 8; }
        }
        ex += 4 + len;
      }
      if (method === 0 && compressedSize !== size32) throw new ZipFormatError(`${this.source}: stored entry '${name}' says ${compressedSize} bytes stored but ${size32} bytes long: corrupt`);
      if (entries.has(name)) throw new ZipFormatError(`${this.source}: entry '${name}' appears twice in the archive`);
      entries.set(name, { name, method, size: size32, compressedSize, crc32: crc, headerOffset });
      at += 46 + nameLen + extraLen + commentLen;
    }
    return entries;
  }

  private u64(at: number, what: string): number {
    this.need(at, 8, what);
    const n = this.view.getBigUint64(at, true);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError(`${this.source}: ${what} ${n} at offset ${at} is out of range: corrupt`);
    return Number(n);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE 802.3, the zip checksum). */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** True when the bytes start like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}
