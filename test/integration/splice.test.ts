/** The splice between a local end and a tunnel, over real loopback sockets. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect, createServer as netServer, type AddressInfo, type Socket } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { Duplex, PassThrough, Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { socketTunnel } from '../../src/tunnel/connect.js';
import type { Tunnel } from '../../src/tunnel/transport.js';
import { BULK_TRANSFER, JOINED_RECORDS, readBufferSize, splice, UPLOAD_SLICE } from '../../src/tunnel/splice.js';
import { payload, sha256 } from '../helpers/data.js';
import { readFixture } from '../helpers/fixtures.js';
import { within } from '../helpers/world.js';

const MB = 1024 * 1024;

/**
 * A TLS peer (a tunnel is TLS to the proxy) that ends its side at once, reads nothing for half a
 * second, and reports the digest of all it read. By the time the local side ends, the download
 * is long over and the upload is still queued on its way into the TLS socket.
 */
async function slowReaderThatEndsFirst() {
  let digest!: (hex: string) => void;
  const got = new Promise<string>((resolve) => (digest = resolve));
  const sockets = new Set<TLSSocket>();
  const server = createServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem'), allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    const hash = createHash('sha256');
    s.on('data', (d: Buffer) => hash.update(d));
    s.once('end', () => digest(hash.digest('hex')));
    s.pause();
    setTimeout(() => s.resume(), 500);
    s.end('bye\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  // As the dialler does: TLS over a half-open TCP socket (a TLS socket takes its allowHalfOpen).
  const tcp = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const socket = connect({ socket: tcp, servername: 'localhost', ca: readFixture('ca.pem') });
  await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  const close = async () => {
    socket.destroy();
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return { socket, got, close };
}

/**
 * Local input that sends `data` in small chunks once `delayMs` has passed, then ends. Small
 * chunks matter: the last one is taken without backpressure, so the input ends while it is
 * still queued behind the ones the kernel has not taken yet.
 */
function lateInput(data: Buffer, delayMs: number): Readable {
  const input = new Readable({ read() {} });
  setTimeout(() => {
    for (let at = 0; at < data.length; at += 1024) input.push(data.subarray(at, at + 1024));
    input.push(null);
  }, delayMs);
  return input;
}

describe('splice', () => {
  for (const holdFinMs of [0, 200]) {
    it(`sends every queued byte before it destroys a tunnel whose far side ended first (FIN hold ${holdFinMs} ms)`, { timeout: 30_000 }, async () => {
      const peer = await slowReaderThatEndsFirst();
      try {
        const data = payload(32 * MB, 7);
        const output = new PassThrough();
        const received: Buffer[] = [];
        output.on('data', (d: Buffer) => received.push(d));
        const tunnel = socketTunnel(peer.socket, holdFinMs);
        const result = await splice({ input: lateInput(data, 100), output }, tunnel);
        assert.equal(result.error, undefined);
        assert.equal(Buffer.concat(received).toString(), 'bye\n');
        assert.equal(await within(peer.got, 20_000, 'the peer saw no end'), sha256(data));
        assert.ok(peer.socket.destroyed, 'the tunnel is destroyed once the splice is over');
      } finally {
        await peer.close();
      }
    });
  }

  it('writes large local chunks to the tunnel one TLS record at a time, every byte in order, the end after the last piece', { timeout: 30_000 }, async () => {
    const peer = await slowReaderThatEndsFirst();
    try {
      // Chunks of 1 MiB and odd sizes, then the end at once: it comes while pieces of the last
      // chunk still wait for the slow reader, and must be passed on after them.
      const data = payload(8 * MB + 12_345, 11);
      const input = new Readable({ read() {} });
      for (let at = 0; at < data.length; at += MB) input.push(data.subarray(at, at + MB));
      input.push(null);
      let largest = 0;
      const write = peer.socket.write.bind(peer.socket) as (chunk: Buffer) => boolean;
      peer.socket.write = ((chunk: Buffer) => {
        largest = Math.max(largest, chunk.length);
        return write(chunk);
      }) as typeof peer.socket.write;
      const result = await splice({ input, output: new PassThrough().resume() }, socketTunnel(peer.socket, 0));
      assert.equal(result.error, undefined);
      assert.equal(await within(peer.got, 20_000, 'the peer saw no end'), sha256(data));
      assert.equal(largest, UPLOAD_SLICE, 'no write to the tunnel larger than one record');
    } finally {
      await peer.close();
    }
  });

  for (const [mode, after] of [
    ['from the first byte (stdio)', 0],
    ['once the tunnel moves bulk data (a listener), after a pipe', BULK_TRANSFER],
  ] as const) {
    it(`download read into reused buffers ${mode}, its records joined once bulk: every byte reaches a local output that is slow now and then, in order`, { timeout: 30_000 }, async () => {
      const data = payload(16 * MB + 777, 13);
      const server = createServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem'), allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        s.resume();
        // Odd-sized writes, so that records and reads do not line up with the buffer.
        for (let at = 0; at < data.length; at += 100_003) s.write(data.subarray(at, at + 100_003));
        s.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const tcp = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true });
        const socket = connect({ socket: tcp, servername: 'localhost', ca: readFixture('ca.pem') });
        await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        socket.pause();
        // Bytes are hashed when the output gets to them, not when written: a buffer used again
        // while the output still held it would change the digest.
        const hash = createHash('sha256');
        let writes = 0;
        // A buffer read into again and again shows up as the same ArrayBuffer under many writes
        // (with the largest read into it); piped, every record comes in a buffer of its own, and
        // what the socket held when the reading switched comes as one chunk.
        const memory = new Map<ArrayBufferLike, { uses: number; largest: number }>();
        let largestInFirstMiB = 0;
        const firstMiB = new Set<ArrayBufferLike>();
        let received = 0;
        const output = new Writable({
          highWaterMark: 32 * 1024,
          write(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            const seen = memory.get(chunk.buffer) ?? { uses: 0, largest: 0 };
            memory.set(chunk.buffer, { uses: seen.uses + 1, largest: Math.max(seen.largest, chunk.length) });
            received += chunk.length;
            if (received <= BULK_TRANSFER) {
              firstMiB.add(chunk.buffer);
              // What the socket held when the reading switched comes as one chunk: not a read.
              if (seen.uses > 0) largestInFirstMiB = Math.max(largestInFirstMiB, chunk.length);
            }
            if (++writes % 7 === 0) setTimeout(callback, 2);
            else callback();
          },
        });
        const input = new PassThrough();
        input.end();
        const done = splice({ input, output }, socketTunnel(socket, 0), { readIntoAfter: after });
        if (after === 0) assert.equal(socket.listenerCount('data'), 0, 'read into the buffer, not piped');
        else assert.ok(socket.listenerCount('data') > 0, 'piped first');
        const result = await done;
        assert.equal(result.error, undefined);
        assert.ok(output.writableFinished, 'the remote end reached the local output');
        assert.equal(hash.digest('hex'), sha256(data));
        assert.equal(readBufferSize(socket), 16 * 1024);
        const largest = Math.max(...[...memory.values()].filter((m) => m.uses > 1).map((m) => m.largest));
        assert.ok(largest <= JOINED_RECORDS * readBufferSize(socket), `no write larger than the joined buffer (${largest})`);
        assert.ok(largest > readBufferSize(socket), `records joined once bulk (largest write ${largest})`);
        assert.ok(largestInFirstMiB <= readBufferSize(socket), `the first MiB a record per write (${largestInFirstMiB})`);
        assert.ok(memory.size < writes / 2, `read into reused buffers: ${memory.size} buffers for ${writes} writes`);
        if (after > 0) assert.ok(firstMiB.size > 16, `the first MiB piped, a buffer per record: ${firstMiB.size}`);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }

  for (const [mode, after] of [
    ['from the first byte (stdio)', 0],
    ['once the tunnel moves bulk data (a listener), after the first MiB', BULK_TRANSFER],
  ] as const) {
    it(`upload read into reused buffers ${mode}, each read written whole: every byte reaches a proxy that is slow now and then, in order`, { timeout: 30_000 }, async () => {
      const data = payload(16 * MB + 4_321, 17);
      // The proxy's side: hashes what it reads, stops reading for 2 ms now and then, and ends
      // its side once the upload ended.
      const proxy = createServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem'), allowHalfOpen: true }, (s) => {
        s.on('error', () => {});
        const hash = createHash('sha256');
        let reads = 0;
        s.on('data', (d: Buffer) => {
          hash.update(d);
          if (++reads % 11 === 0) {
            s.pause();
            setTimeout(() => s.resume(), 2);
          }
        });
        s.once('end', () => s.end(hash.digest('hex')));
      });
      // The local side: a real accepted socket, as a listener has, fed in odd-sized writes.
      const local = netServer({ allowHalfOpen: true });
      await Promise.all([
        new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve)),
        new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve)),
      ]);
      const client = netConnect({ port: (local.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
      try {
        const accepted = await new Promise<Socket>((resolve) => local.once('connection', resolve));
        accepted.pause();
        const tcp = netConnect({ host: '127.0.0.1', port: (proxy.address() as AddressInfo).port, allowHalfOpen: true });
        const socket = connect({ socket: tcp, servername: 'localhost', ca: readFixture('ca.pem') });
        await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        // Each write to the tunnel noted (its size, its memory), passed on as it came.
        let writes = 0;
        let largest = 0;
        let largestInFirstMiB = 0;
        const firstMiB = new Set<ArrayBufferLike>();
        const afterFirstMiB = new Set<ArrayBufferLike>();
        let sent = 0;
        const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
        socket.write = ((chunk: Buffer, ...rest: unknown[]) => {
          writes++;
          largest = Math.max(largest, chunk.length);
          sent += chunk.length;
          if (sent <= BULK_TRANSFER) {
            firstMiB.add(chunk.buffer);
            largestInFirstMiB = Math.max(largestInFirstMiB, chunk.length);
          } else {
            afterFirstMiB.add(chunk.buffer);
          }
          return write(chunk, ...rest);
        }) as typeof socket.write;
        let answer = '';
        client.setEncoding('utf8').on('data', (d: string) => (answer += d));
        const done = splice({ input: accepted, output: accepted }, socketTunnel(socket, 0), { readIntoAfter: after });
        for (let at = 0; at < data.length; at += 77_777) client.write(data.subarray(at, at + 77_777));
        client.end();
        const result = await within(done, 25_000, { error: new Error('the splice did not end within 25 s'), failedSide: undefined });
        assert.equal(result.error, undefined);
        const ended = new Promise<boolean>((resolve) => (client.readableEnded ? resolve(true) : client.once('end', () => resolve(true))));
        assert.ok(await within(ended, 5_000, false), 'the end reached the local client');
        assert.equal(answer, sha256(data), 'the proxy got every byte, in order');
        assert.ok(largest <= readBufferSize(accepted), `no write larger than a read (${largest})`);
        assert.ok(largest > UPLOAD_SLICE, `reads written whole once bulk (largest write ${largest})`);
        // Two buffers in turn, and a fresh one now and then should both still be held.
        assert.ok(afterFirstMiB.size <= 8, `read into reused buffers: ${afterFirstMiB.size} buffers under the ${writes} writes after the first MiB`);
        if (after > 0) {
          assert.ok(largestInFirstMiB <= UPLOAD_SLICE, `the first MiB sliced into records (largest write ${largestInFirstMiB})`);
          assert.ok(firstMiB.size >= 8, `the first MiB read as usual, a buffer per read: ${firstMiB.size}`);
        } else {
          assert.ok(firstMiB.size <= 3, `reused from the first byte: ${firstMiB.size} buffers in the first MiB`);
        }
      } finally {
        client.destroy();
        await Promise.all([new Promise((resolve) => proxy.close(resolve)), new Promise((resolve) => local.close(resolve))]);
      }
    });
  }

  /** A tunnel over an in-memory stream; `finished` counts calls of `finish`. */
  function memoryTunnel(stream: Duplex): Tunnel & { finished: number } {
    const tunnel = {
      stream,
      finished: 0,
      progress: () => ({ sent: 0, received: 0, queued: 0 }),
      finish: async () => void tunnel.finished++,
      explain: () => undefined,
    };
    return tunnel;
  }

  it('passes each side\'s end on after its last byte, calls finish once the local side is done, and ends without an error', async () => {
    // The far side as two halves: what is written to it is kept, what it sends is pushed.
    const sent: Buffer[] = [];
    const remote = new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        sent.push(chunk);
        callback();
      },
    });
    const output = new PassThrough();
    const input = new PassThrough();
    const received: Buffer[] = [];
    output.on('data', (d: Buffer) => received.push(d));
    const tunnel = memoryTunnel(remote);
    const done = splice({ input, output }, tunnel);
    input.end('up');
    await new Promise((r) => setImmediate(r));
    assert.equal(tunnel.finished, 1, 'finish is called once the local side ended');
    remote.push('down');
    remote.push(null);
    const result = await within(done, 5000, { error: new Error('the splice did not end'), failedSide: undefined });
    assert.equal(result.error, undefined);
    assert.equal(Buffer.concat(received).toString(), 'down');
    assert.equal(Buffer.concat(sent).toString(), 'up');
    assert.ok(output.writableFinished, 'the remote end reached the local output');
    assert.ok(input.destroyed && remote.destroyed, 'both sides are destroyed at the end');
  });

  it('a tunnel stream that closes without an end or an error ends the splice with a premature close', async () => {
    const remote = new PassThrough();
    const input = new PassThrough();
    const output = new PassThrough();
    const done = splice({ input, output }, memoryTunnel(remote));
    setImmediate(() => remote.destroy());
    const result = await within(done, 5000, { error: new Error('the splice did not end'), failedSide: undefined });
    assert.equal((result.error as NodeJS.ErrnoException | undefined)?.code, 'ERR_STREAM_PREMATURE_CLOSE');
    assert.ok(input.destroyed && output.destroyed, 'the local side is destroyed too');
  });

  it('the first error wins and names its side: a local output that fails', async () => {
    const remote = new PassThrough();
    const output = new Writable({ write: (_chunk, _encoding, callback) => callback(Object.assign(new Error('disk full'), { code: 'ENOSPC', syscall: 'write' })) });
    const done = splice({ input: new PassThrough(), output }, memoryTunnel(remote));
    remote.write('data');
    const result = await within(done, 5000, { error: new Error('the splice did not end'), failedSide: undefined });
    assert.equal((result.error as NodeJS.ErrnoException | undefined)?.code, 'ENOSPC');
    assert.equal(result.failedSide, 'local');
    assert.ok(remote.destroyed, 'the tunnel is destroyed');
  });
});
