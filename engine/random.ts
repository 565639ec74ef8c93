// The project's one seeded pseudo-random generator: xoshiro128** (Blackman & Vigna; four 32-bit
// state words), seeded through splitmix32. Weight initialization, augmentation, data order, bit
// sampling and evaluation all draw from it, and its state (four u32 words) is what a training
// checkpoint stores to resume bit-identically. It imports nothing.

/** A seeded generator. Not cryptographic. */
export class Rng {
  private readonly s = new Uint32Array(4);

  constructor(seed = 0) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** The next 32 random bits, as an integer in [0, 2^32). */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform in [0, 1) (a multiple of 2^-32). Bound to this generator, so `rng.next` can be
   * passed wherever a `() => number` source is wanted (e.g. a layer's `random` option). */
  readonly next = (): number => this.nextU32() / 4294967296;

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /**
   * An integer in [lo, hi): `lo` included, `hi` EXCLUDED (so `int(0, n)` is one of 0..n-1).
   * floor(u * (hi - lo)) with u on a 2^-32 grid: each value's probability is off from
   * 1 / (hi - lo) by less than (hi - lo) / 2^32, which is negligible for the sizes used here.
   */
  int(lo: number, hi: number): number {
    if (!(hi > lo)) throw new RangeError(`Rng.int: empty range [${lo}, ${hi})`);
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** Normal(mean, std) by the Box-Muller transform (two uniform draws per value). */
  normal(mean = 0, std = 1): number {
    const u = 1 - this.next(); // (0, 1]: log(u) is finite
    const v = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /**
   * Shuffles `items` in place with Fisher-Yates (Durstenfeld's form) and returns it: every
   * one of the n! orders is equally likely. Position i swaps with j = int(0, i + 1), a draw
   * that INCLUDES i; drawing int(0, i) instead is Sattolo's algorithm, which produces only
   * the (n-1)! single-cycle orders (no element ever stays in place).
   */
  shuffle<T extends { length: number; [i: number]: unknown }>(items: T): T {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A uniformly random order of 0..n-1 (`shuffle` of the identity). */
  permutation(n: number): Uint32Array {
    return this.shuffle(Uint32Array.from({ length: n }, (_, i) => i));
  }

  /** The four state words, to continue the same sequence later with `setState`. */
  state(): number[] {
    return [...this.s];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff) || state.every((v) => v === 0)) {
      throw new RangeError(`xoshiro128 state must be 4 u32 words, not all zero; got [${state.join(', ')}]`);
    }
    this.s.set(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
