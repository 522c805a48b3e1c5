/**
 * The capsule layer of CONNECT-UDP over HTTP/1.1: QUIC variable-length integers (RFC 9000
 * section 16) and the Capsule Protocol (RFC 9297): varint type, varint length, payload. A
 * DATAGRAM capsule (type 0x00) carries an HTTP Datagram: a varint context id, then, for context
 * id 0, one UDP payload (RFC 9298). Other capsule types are skipped as they stream past, never
 * buffered whole; datagrams with another context id are dropped and counted.
 */
import { text } from '../output/messages.js';

/** The largest value a varint can hold: 2^62 - 1. */
export const MAX_VARINT = (1n << 62n) - 1n;

/** The largest UDP payload: an IPv6 payload of 65535 bytes less the UDP header (IPv4 allows 65507). */
export const MAX_UDP_PAYLOAD = 65527;

/**
 * The largest DATAGRAM capsule payload accepted from the proxy: a whole UDP payload, its
 * context id, and headroom. Anything longer is not a proxy relaying UDP.
 */
export const MAX_DATAGRAM_CAPSULE = 64 * 1024 + 64;

export const DATAGRAM_CAPSULE_TYPE = 0x00;

/** The bytes a varint takes, from the two high bits of its first byte. */
export function varintLength(firstByte: number): 1 | 2 | 4 | 8 {
  return (1 << (firstByte >> 6)) as 1 | 2 | 4 | 8;
}

/** Encodes `value` (0 .. 2^62-1) in the shortest form. */
export function encodeVarint(value: number | bigint): Buffer {
  const v = BigInt(value);
  if (v < 0n || v > MAX_VARINT) throw new RangeError(`varint out of range: ${v}`);
  if (v < 64n) return Buffer.from([Number(v)]);
  if (v < 16384n) {
    const out = Buffer.allocUnsafe(2);
    out.writeUInt16BE(Number(v) | 0x4000);
    return out;
  }
  if (v < 1n << 30n) {
    const out = Buffer.allocUnsafe(4);
    out.writeUInt32BE((Number(v) | 0x80000000) >>> 0);
    return out;
  }
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(v | (3n << 62n));
  return out;
}

/** Decodes the varint at `offset`, or undefined when `bytes` ends before it does. */
export function decodeVarint(bytes: Uint8Array, offset = 0): { value: bigint; length: number } | undefined {
  if (offset >= bytes.length) return undefined;
  const length = varintLength(bytes[offset]!);
  if (offset + length > bytes.length) return undefined;
  let value = BigInt(bytes[offset]! & 0x3f);
  for (let i = 1; i < length; i++) value = (value << 8n) | BigInt(bytes[offset + i]!);
  return { value, length };
}

/** One DATAGRAM capsule carrying `payload` under context id 0. */
export function encodeDatagramCapsule(payload: Uint8Array): Buffer {
  // Context id 0 is the single byte 0x00.
  const length = encodeVarint(payload.length + 1);
  const out = Buffer.allocUnsafe(1 + length.length + 1 + payload.length);
  out[0] = DATAGRAM_CAPSULE_TYPE;
  length.copy(out, 1);
  out[1 + length.length] = 0x00;
  out.set(payload, 2 + length.length);
  return out;
}

/** The proxy's capsule stream cannot be relayed: too long a DATAGRAM, or no context id. */
export class CapsuleError extends Error {
  override readonly name = 'CapsuleError';
}

export interface CapsuleCounts {
  /** DATAGRAM capsules with a context id other than 0 (dropped). */
  readonly otherContext: number;
  /** Capsules of other types (skipped). */
  readonly skipped: number;
}

/**
 * A streaming parser: feed it the bytes as they arrive, in chunks cut anywhere; it calls
 * `onDatagram` with each UDP payload, in order. It throws a `CapsuleError` when the stream
 * cannot be a proxy relaying UDP; after that it must not be fed again.
 */
export class CapsuleParser {
  readonly #onDatagram: (payload: Buffer) => void;
  readonly #maxDatagram: number;
  /** Header bytes (type and length) not yet complete; at most 16. */
  #head = Buffer.alloc(0);
  /** The DATAGRAM being collected, and how much of it has come. */
  #body: Buffer | undefined;
  #filled = 0;
  /** Bytes of a skipped capsule still to pass. */
  #skip = 0n;
  #otherContext = 0;
  #skipped = 0;

  constructor(onDatagram: (payload: Buffer) => void, maxDatagram = MAX_DATAGRAM_CAPSULE) {
    this.#onDatagram = onDatagram;
    this.#maxDatagram = maxDatagram;
  }

  counts(): CapsuleCounts {
    return { otherContext: this.#otherContext, skipped: this.#skipped };
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0n) {
        const rest = chunk.length - at;
        const take = this.#skip >= BigInt(rest) ? rest : Number(this.#skip);
        this.#skip -= BigInt(take);
        at += take;
        continue;
      }
      if (this.#body) {
        const take = Math.min(chunk.length - at, this.#body.length - this.#filled);
        chunk.copy(this.#body, this.#filled, at, at + take);
        this.#filled += take;
        at += take;
        if (this.#filled === this.#body.length) this.#deliver();
        continue;
      }
      // A header: type and length, at most 8 bytes each. Take bytes one varint at a time.
      const need = this.#headNeed();
      const take = Math.min(chunk.length - at, need);
      this.#head = Buffer.concat([this.#head, chunk.subarray(at, at + take)]);
      at += take;
      if (take === need) this.#headMaybeDone();
    }
  }

  /** How many more bytes the header needs before it can be looked at again. */
  #headNeed(): number {
    const head = this.#head;
    if (head.length === 0) return 1;
    const typeLength = varintLength(head[0]!);
    if (head.length < typeLength) return typeLength - head.length;
    if (head.length === typeLength) return 1;
    const lengthLength = varintLength(head[typeLength]!);
    return typeLength + lengthLength - head.length;
  }

  #headMaybeDone(): void {
    const type = decodeVarint(this.#head, 0);
    if (!type) return;
    const length = decodeVarint(this.#head, type.length);
    if (!length) return;
    this.#head = Buffer.alloc(0);
    if (type.value !== BigInt(DATAGRAM_CAPSULE_TYPE)) {
      this.#skipped++;
      this.#skip = length.value;
      return;
    }
    if (length.value === 0n) throw new CapsuleError(text.capsuleNoContext);
    if (length.value > BigInt(this.#maxDatagram)) throw new CapsuleError(text.capsuleTooLong(String(length.value), this.#maxDatagram));
    this.#body = Buffer.allocUnsafe(Number(length.value));
    this.#filled = 0;
  }

  #deliver(): void {
    const body = this.#body!;
    this.#body = undefined;
    const context = decodeVarint(body, 0);
    if (!context) throw new CapsuleError(text.capsuleNoContext);
    if (context.value !== 0n) {
      this.#otherContext++;
      return;
    }
    this.#onDatagram(body.subarray(context.length));
  }

  /** Whether the stream stopped between capsules (not inside one). */
  get atBoundary(): boolean {
    return this.#head.length === 0 && this.#body === undefined && this.#skip === 0n;
  }
}
