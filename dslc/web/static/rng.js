// NumPy's `np.random.default_rng([seed, epoch]).permutation(n)`, bit for bit,
// so the page and Node visit examples in the order the Python runtime does
// (runtime/data.py: Dataset.batches). Three pieces, as in NumPy:
//   SeedSequence(entropy) -> 8 uint32 words   (numpy/random/bit_generator.pyx)
//   PCG64: 128-bit LCG  s <- s * M + inc, output XSL-RR 64 bits; 32-bit draws
//          are the low then the high half of one 64-bit draw   (pcg64.h)
//   shuffle: Fisher-Yates from the top, j = masked rejection draw in [0, i]
//            (random_interval in distributions.c)

const M32 = 0xffffffffn, M64 = (1n << 64n) - 1n, M128 = (1n << 128n) - 1n;
const MULT = (2549297995355413924n << 64n) + 4865540595714422341n;
const INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
const MIX_L = 0xca01f9dd, MIX_R = 0x4973f715;

const mul32 = (a, b) => Math.imul(a, b) >>> 0;

function words(n) {            // a non-negative integer as little-endian uint32 words
  let v = BigInt(n);
  if (v < 0n) throw new Error(`seed ${n} is negative; NumPy's SeedSequence needs a non-negative integer`);
  if (v === 0n) return [0];
  const out = [];
  while (v > 0n) { out.push(Number(v & M32)); v >>= 32n; }
  return out;
}

/** SeedSequence(entropy).generate_state(nWords) as uint32 words (pool size 4). */
export function seedSequence(entropy, nWords) {
  const ent = entropy.flatMap(words);
  let hc = INIT_A;
  const hashmix = v => {
    v = (v ^ hc) >>> 0;
    hc = mul32(hc, MULT_A);
    v = mul32(v, hc);
    return (v ^ (v >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const r = (mul32(MIX_L, x) - mul32(MIX_R, y)) >>> 0;
    return (r ^ (r >>> 16)) >>> 0;
  };
  const pool = [0, 1, 2, 3].map(i => hashmix(i < ent.length ? ent[i] : 0));
  for (let s = 0; s < 4; s++) for (let d = 0; d < 4; d++) if (s !== d) pool[d] = mix(pool[d], hashmix(pool[s]));
  for (let s = 4; s < ent.length; s++) for (let d = 0; d < 4; d++) pool[d] = mix(pool[d], hashmix(ent[s]));
  let h = INIT_B;
  const out = [];
  for (let i = 0; i < nWords; i++) {
    let v = (pool[i % 4] ^ h) >>> 0;
    h = mul32(h, MULT_B);
    v = mul32(v, h);
    out.push((v ^ (v >>> 16)) >>> 0);
  }
  return out;
}

/** NumPy's PCG64 seeded from SeedSequence(entropy). */
export class PCG64 {
  constructor(entropy) {
    const w = seedSequence(entropy, 8).map(BigInt);
    const u = [0, 1, 2, 3].map(i => w[2 * i] | (w[2 * i + 1] << 32n));
    const initstate = (u[0] << 64n) | u[1], initseq = (u[2] << 64n) | u[3];
    this.inc = ((initseq << 1n) | 1n) & M128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initstate) & M128;
    this.step();
    this.half = null;            // the buffered high half for 32-bit draws
  }

  step() { this.state = (this.state * MULT + this.inc) & M128; }

  next64() {
    this.step();
    const s = this.state, rot = s >> 122n, v = ((s >> 64n) ^ s) & M64;
    return ((v >> rot) | (v << ((64n - rot) & 63n))) & M64;
  }

  next32() {
    if (this.half !== null) { const h = this.half; this.half = null; return h; }
    const n = this.next64();
    this.half = Number(n >> 32n);
    return Number(n & M32);
  }
}

/** default_rng([seed, epoch]).permutation(n) as an Int32Array. */
export function permutation(seed, epoch, n) {
  const g = new PCG64([seed, epoch]);
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    let mask = i;                                 // the smallest all-ones mask >= i
    mask |= mask >>> 1; mask |= mask >>> 2; mask |= mask >>> 4; mask |= mask >>> 8; mask |= mask >>> 16;
    let j;
    do { j = (g.next32() & mask) >>> 0; } while (j > i);
    const t = a[i]; a[i] = a[j]; a[j] = t;
  }
  return a;
}
