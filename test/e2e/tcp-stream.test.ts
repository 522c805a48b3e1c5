/**
 * burrow tcp carrying real bytes: the real CLI, real TLS, the local proxy, real TCP servers.
 * Byte-exactness is checked with sha256; half-close and backpressure are checked by behaviour.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { runBurrow, spawnBurrow, startListener } from '../helpers/burrow.js';
import { chunked, payload, sha256 } from '../helpers/data.js';
import { startSourceServer, startTcpServer } from '../helpers/echo-server.js';
import { rssBytes } from '../helpers/load.js';
import { eventually, startWorld, suiteWorld } from '../helpers/world.js';

/** Connects to a local listener, sends `data`, half-closes, and returns everything received. */
async function roundTrip(port: number, data: Buffer): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  socket.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('close', (hadError) => (hadError ? reject(new Error('socket closed with an error')) : resolve()));
    socket.once('error', reject);
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  chunked(data).pipe(socket);
  await closed;
  return Buffer.concat(chunks);
}

describe('burrow tcp: streams', () => {
  const world = suiteWorld();

  it('listener mode carries 50 MB both ways, byte for byte', async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const data = payload(50 * 1024 * 1024, 7);
    const back = await roundTrip(burrow.port, data);
    assert.equal(back.length, data.length);
    assert.equal(sha256(back), sha256(data));
    assert.equal(await burrow.stop(), 0);
  });

  it('stdio mode carries 50 MB both ways and exits 0 when the far end closes', async () => {
    const data = payload(50 * 1024 * 1024, 8);
    const { code, stdout, stderr } = await runBurrow(world.tcpArgs(undefined, '--listen', '-'), {
      env: world.env,
      input: data,
      timeoutMs: 60_000,
    });
    assert.equal(code, 0, stderr);
    assert.equal(stdout.length, data.length);
    assert.equal(sha256(stdout), sha256(data));
    assert.equal(stderr, '', 'stdio mode is quiet on success');
  });

  it('listener mode serves 100 concurrent connections, each its own tunnel', async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const before = world.proxy.stats.connectsByStatus[200] ?? 0;
    const results = await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const data = payload(64 * 1024 + i, 1000 + i);
        const back = await roundTrip(burrow.port, data);
        return sha256(back) === sha256(data);
      }),
    );
    assert.equal(results.filter(Boolean).length, 100);
    assert.equal((world.proxy.stats.connectsByStatus[200] ?? 0) - before, 100, 'one CONNECT per connection');
    assert.equal(await burrow.stop(), 0);
  });

  it('a listener resumes its TLS session for later tunnels; a fresh process does not', async () => {
    const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
    const { tlsHandshakes, tlsResumed } = world.proxy.stats;
    for (let i = 0; i < 3; i++) {
      const data = payload(4096, 300 + i);
      assert.equal(sha256(await roundTrip(burrow.port, data)), sha256(data));
    }
    assert.equal(world.proxy.stats.tlsHandshakes - tlsHandshakes, 3);
    // The first tunnel brings the session ticket; the next two resume with it.
    assert.equal(world.proxy.stats.tlsResumed - tlsResumed, 2);
    assert.equal(await burrow.stop(), 0);
    // Sessions live in memory only: a new process makes a full handshake.
    const { code, stderr } = await runBurrow(world.tcpArgs(undefined, '--listen', '-'), { env: world.env, input: 'x' });
    assert.equal(code, 0, stderr);
    assert.equal(world.proxy.stats.tlsResumed - tlsResumed, 2);
  });

  it('keeps bytes the proxy sends in the same packet as its 200 answer', async () => {
    const greeting = Buffer.from('SSH-2.0-greeting-before-anything\r\n');
    const w = await startWorld({ greeting });
    try {
      const { code, stdout, stderr } = await runBurrow(w.tcpArgs(undefined, '--listen', '-'), { env: w.env, input: 'abc' });
      assert.equal(code, 0, stderr);
      assert.equal(stdout.toString(), `${greeting.toString()}abc`);
    } finally {
      await w.close();
    }
  });

  describe('half-close', () => {
    it('local EOF reaches the server, which can still answer (listener and stdio)', async () => {
      // The server answers only after it sees EOF: like `git push` waiting for the pack's end.
      const server = await startTcpServer((socket) => {
        const got: Buffer[] = [];
        socket.on('data', (d: Buffer) => got.push(d));
        socket.on('end', () => socket.end(`got ${Buffer.concat(got).length} bytes after EOF`));
      });
      world.proxy.addRoute({ from: 'tcp+https://halfclose.corp.test:22', to: `tcp://${server.address}` });
      try {
        const burrow = await startListener(world.tcpArgs('halfclose.corp.test:22').slice(1), { env: world.env });
        const back = await roundTrip(burrow.port, payload(100_000));
        assert.equal(back.toString(), 'got 100000 bytes after EOF');
        await burrow.stop();

        const stdio = await runBurrow(world.tcpArgs('halfclose.corp.test:22', '--listen', '-'), { env: world.env, input: payload(12345) });
        assert.equal(stdio.code, 0, stdio.stderr);
        assert.equal(stdio.stdout.toString(), 'got 12345 bytes after EOF');
      } finally {
        await server.close();
      }
    });

    it('server EOF reaches the client, which can still send (listener)', async () => {
      let received: Promise<string> | undefined;
      const server = await startTcpServer((socket) => {
        const got: Buffer[] = [];
        socket.on('data', (d: Buffer) => got.push(d));
        received = new Promise((resolve) => socket.on('end', () => resolve(Buffer.concat(got).toString())));
        socket.end('server is done talking');
      });
      world.proxy.addRoute({ from: 'tcp+https://serverfirst.corp.test:22', to: `tcp://${server.address}` });
      try {
        const burrow = await startListener(world.tcpArgs('serverfirst.corp.test:22').slice(1), { env: world.env });
        const socket = net.connect({ host: '127.0.0.1', port: burrow.port, allowHalfOpen: true });
        let text = '';
        socket.setEncoding('utf8').on('data', (d: string) => (text += d));
        await new Promise<void>((resolve) => socket.once('end', resolve));
        assert.equal(text, 'server is done talking');
        const closed = new Promise((resolve) => socket.once('close', resolve));
        socket.end('client still had this to say');
        await closed;
        await eventually(() => received !== undefined);
        assert.equal(await received, 'client still had this to say');
        await burrow.stop();
      } finally {
        await server.close();
      }
    });

    it('stdio mode exits 0 once the server has closed and its bytes are flushed, with stdin still open', async () => {
      const source = await startSourceServer(3 * 1024 * 1024, 3);
      world.proxy.addRoute({ from: 'tcp+https://source.corp.test:22', to: `tcp://${source.address}` });
      try {
        const proc = spawnBurrow(world.tcpArgs('source.corp.test:22', '--listen', '-'), { env: world.env, collectStdout: false });
        const chunks: Buffer[] = [];
        proc.child.stdout.on('data', (d: Buffer) => chunks.push(d));
        // stdin is deliberately left open, as ssh leaves it.
        const code = await Promise.race([proc.exited, new Promise<number>((r) => setTimeout(() => r(-1), 20_000))]);
        assert.equal(code, 0, proc.stderr());
        assert.equal(sha256(Buffer.concat(chunks)), source.sha256);
      } finally {
        await source.close();
      }
    });
  });

  it('a slow reader does not make burrow buffer without bound', async () => {
    const size = 160 * 1024 * 1024;
    const source = await startSourceServer(size, 11);
    world.proxy.addRoute({ from: 'tcp+https://bulk.corp.test:22', to: `tcp://${source.address}` });
    try {
      const burrow = await startListener(world.tcpArgs('bulk.corp.test:22').slice(1), { env: world.env });
      const socket = net.connect({ host: '127.0.0.1', port: burrow.port });
      socket.pause();
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      // Stall for a while the source could fill hundreds of MB; sample burrow's memory.
      let peak = 0;
      for (let i = 0; i < 30; i++) {
        peak = Math.max(peak, rssBytes(burrow.child.pid!));
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(peak < 120 * 1024 * 1024, `burrow RSS peaked at ${(peak / 2 ** 20).toFixed(0)} MiB while the reader was stalled`);
      // Then read everything: nothing was lost while paused.
      const hash = (await import('node:crypto')).createHash('sha256');
      let bytes = 0;
      socket.on('data', (d: Buffer) => {
        hash.update(d);
        bytes += d.length;
      });
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
      assert.equal(bytes, size);
      assert.equal(hash.digest('hex'), source.sha256);
      await burrow.stop();
    } finally {
      await source.close();
    }
  });
});
