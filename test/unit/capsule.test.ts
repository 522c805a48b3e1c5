/** QUIC varints and the Capsule Protocol stream that CONNECT-UDP over HTTP/1.1 carries. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CapsuleError, CapsuleParser, decodeVarint, encodeDatagramCapsule, encodeVarint, MAX_DATAGRAM_CAPSULE, MAX_VARINT } from '../../src/tunnel/capsule.js';
import { createRng, FUZZ_SEED } from '../helpers/fuzz.js';

/** A capsule of any type, built from its parts. */
function capsule(type: number | bigint, payload: Buffer): Buffer {
  return Buffer.concat([encodeVarint(type), encodeVarint(payload.length), payload]);
}

/** A DATAGRAM capsule with the given context id. */
function datagram(context: number | bigint, payload: Buffer): Buffer {
  return capsule(0, Buffer.concat([encodeVarint(context), payload]));
}

function parseAll(chunks: Buffer[]): { got: Buffer[]; parser: CapsuleParser } {
  const got: Buffer[] = [];
  const parser = new CapsuleParser((payload) => got.push(Buffer.from(payload)));
  for (const chunk of chunks) parser.push(chunk);
  return { got, parser };
}

describe('varints (RFC 9000 section 16)', () => {
  it('decodes the examples of RFC 9000 appendix A.1', () => {
    const cases: Array<[string, bigint]> = [
      ['c2197c5eff14e88c', 151288809941952652n],
      ['9d7f3e7d', 494878333n],
      ['7bbd', 15293n],
      ['25', 37n],
      ['4025', 37n],
    ];
    for (const [hex, value] of cases) assert.deepEqual(decodeVarint(Buffer.from(hex, 'hex')), { value, length: hex.length / 2 });
  });

  it('round-trips at every length boundary, in the shortest form', () => {
    const cases: Array<[bigint, number]> = [
      [0n, 1],
      [63n, 1],
      [64n, 2],
      [16383n, 2],
      [16384n, 4],
      [(1n << 30n) - 1n, 4],
      [1n << 30n, 8],
      [MAX_VARINT, 8],
    ];
    for (const [value, length] of cases) {
      const bytes = encodeVarint(value);
      assert.equal(bytes.length, length, `length of ${value}`);
      assert.deepEqual(decodeVarint(bytes), { value, length });
      // Cut short, it is not a varint yet.
      assert.equal(decodeVarint(bytes.subarray(0, length - 1)), undefined);
    }
  });

  it('refuses values outside 0 .. 2^62-1', () => {
    assert.throws(() => encodeVarint(-1), RangeError);
    assert.throws(() => encodeVarint(MAX_VARINT + 1n), RangeError);
  });
});

describe('capsule parser (RFC 9297)', () => {
  const payloads = [Buffer.alloc(0), Buffer.from('a'), Buffer.alloc(1200, 7), Buffer.alloc(65527, 0x5a), Buffer.from('last')];
  const stream = Buffer.concat(payloads.map((p) => encodeDatagramCapsule(p)));

  it('the encoder writes type 0, the length, context id 0, the payload', () => {
    assert.deepEqual(encodeDatagramCapsule(Buffer.from('hi')), Buffer.from([0x00, 0x03, 0x00, 0x68, 0x69]));
    const big = encodeDatagramCapsule(Buffer.alloc(65527));
    assert.deepEqual(big.subarray(0, 6), Buffer.from([0x00, 0x80, 0x00, 0xff, 0xf8, 0x00]));
  });

  it('yields each datagram whole, in order, when fed in one piece or byte by byte', () => {
    assert.deepEqual(parseAll([stream]).got, payloads);
    const bytes: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1));
    const { got, parser } = parseAll(bytes);
    assert.deepEqual(got, payloads);
    assert.ok(parser.atBoundary);
  });

  it('yields the same datagrams however the stream is split', () => {
    const rng = createRng(FUZZ_SEED);
    for (let round = 0; round < 50; round++) {
      const chunks: Buffer[] = [];
      for (let at = 0; at < stream.length; ) {
        const size = rng.chance(0.3) ? rng.range(1, 3) : rng.range(1, 20000);
        chunks.push(stream.subarray(at, at + size));
        at += size;
      }
      assert.deepEqual(parseAll(chunks).got, payloads, `seed ${FUZZ_SEED} round ${round}`);
    }
  });

  it('skips capsules of other types, even large ones, without buffering them', () => {
    const huge = 10 * 1024 * 1024;
    const { got, parser } = parseAll([
      capsule(0x2028d7ee, Buffer.from('unknown')),
      datagram(0, Buffer.from('one')),
      // Only the header of a 10 MiB capsule of another type, then its body in 64 KiB pieces.
      Buffer.concat([encodeVarint(0x41), encodeVarint(huge)]),
      ...Array.from({ length: huge / 65536 }, () => Buffer.alloc(65536, 0)),
      datagram(0, Buffer.from('two')),
    ]);
    assert.deepEqual(got, [Buffer.from('one'), Buffer.from('two')]);
    assert.equal(parser.counts().skipped, 2);
  });

  it('drops datagrams with a context id other than 0, and counts them', () => {
    const { got, parser } = parseAll([datagram(2, Buffer.from('x')), datagram(0, Buffer.from('y')), datagram(16384, Buffer.from('z'))]);
    assert.deepEqual(got, [Buffer.from('y')]);
    assert.equal(parser.counts().otherContext, 2);
  });

  it('refuses a DATAGRAM longer than it accepts, before its body comes', () => {
    const parser = new CapsuleParser(() => assert.fail('no datagram'));
    assert.throws(() => parser.push(Buffer.concat([encodeVarint(0), encodeVarint(MAX_DATAGRAM_CAPSULE + 1)])), CapsuleError);
    // The longest accepted one passes.
    const ok = new CapsuleParser(() => {});
    ok.push(capsule(0, Buffer.alloc(MAX_DATAGRAM_CAPSULE)));
    assert.ok(ok.atBoundary);
  });

  it('refuses a DATAGRAM without a context id', () => {
    assert.throws(() => parseAll([capsule(0, Buffer.alloc(0))]), CapsuleError);
    // Context id cut off: a two-byte varint in a one-byte payload.
    assert.throws(() => parseAll([capsule(0, Buffer.from([0x40]))]), CapsuleError);
  });

  it('fuzz: random streams never throw anything but CapsuleError nor yield more than came', () => {
    const rng = createRng(FUZZ_SEED ^ 0x5eed);
    for (let round = 0; round < 500; round++) {
      const bytes = rng.bytes(rng.range(0, 2000));
      const got: Buffer[] = [];
      const parser = new CapsuleParser((p) => got.push(p));
      try {
        for (let at = 0; at < bytes.length; ) {
          const size = rng.range(1, 64);
          parser.push(bytes.subarray(at, at + size));
          at += size;
        }
      } catch (error) {
        assert.ok(error instanceof CapsuleError, `seed ${FUZZ_SEED} round ${round}: ${String(error)}`);
      }
      assert.ok(got.reduce((n, p) => n + p.length, 0) <= bytes.length);
    }
  });
});
