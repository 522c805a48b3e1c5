/** Deterministic test payloads and their digests, so byte-exactness is checked, not assumed. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/** `size` pseudo-random bytes from a seed (xorshift; fast enough for 50 MB). */
export function payload(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  for (; i < size; i++) out[i] = i & 0xff;
  return out;
}

export function sha256(data: Buffer | Buffer[]): string {
  const h = createHash('sha256');
  for (const b of Array.isArray(data) ? data : [data]) h.update(b);
  return h.digest('hex');
}

/** A readable that yields `data` in chunks of `chunk` bytes (so writes interleave realistically). */
export function chunked(data: Buffer, chunk = 64 * 1024): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) return this.push(null);
      this.push(data.subarray(offset, offset + chunk));
      offset += chunk;
    },
  });
}
