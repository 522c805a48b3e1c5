/**
 * The benchmark's far side, run as its own process (forked by run.ts) so that neither the load
 * generator nor the client under test shares an event loop with it: the local proxy
 * (fake-pomerium) with a CONNECT route and a `wss://` route to the bench server, a bare TLS
 * terminator in front of the same bench server (the TLS ceiling), and the bench server itself.
 *
 * The bench server speaks a tiny protocol (protocol.ts): one greeting byte on accept, then a
 * 9-byte command from the client: upload N bytes (acknowledged with one byte once all arrived),
 * download N bytes, or echo. Nothing ends a connection but the client, so a stdio-mode client
 * stays alive until the load generator has read its CPU counters.
 */
import { createSocket } from 'node:dgram';
import { connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { startTcpServer } from '../helpers/echo-server.js';
import { startFakePomerium } from '../helpers/fake-pomerium.js';
import { readFixture } from '../helpers/fixtures.js';
import { ACK, BENCH_DEST, GREETING, HEADER_BYTES, Op, SSH_BENCH_HOST, UDP_BENCH_DEST, WS_PATH, type ServersReady } from './protocol.js';

/** What the download side writes from: one buffer, sent again and again (no per-chunk work). */
const CHUNK = Buffer.alloc(1024 * 1024, 0x5a);

function serve(socket: Socket): void {
  socket.setNoDelay(true);
  socket.write(GREETING);
  let header: Buffer = Buffer.alloc(0);
  const onHeader = (chunk: Buffer): void => {
    header = header.length === 0 ? chunk : Buffer.concat([header, chunk]);
    if (header.length < HEADER_BYTES) return;
    socket.off('data', onHeader);
    const op = header[0];
    const size = Number(header.readBigUInt64BE(1));
    const rest = header.subarray(HEADER_BYTES);
    if (op === Op.Upload) return sink(socket, size, rest);
    if (op === Op.Download) return source(socket, size);
    if (op === Op.Echo) {
      if (rest.length > 0) socket.write(rest);
      socket.pipe(socket);
      return;
    }
    socket.destroy();
  };
  socket.on('data', onHeader);
  // The client's end ends ours (a half-close is answered once everything we send is queued).
  socket.once('end', () => socket.end());
}

function sink(socket: Socket, size: number, first: Buffer): void {
  let left = size - first.length;
  const done = (): void => {
    socket.write(ACK);
    socket.off('data', count);
    socket.resume(); // anything past N is read and dropped
  };
  const count = (chunk: Buffer): void => {
    left -= chunk.length;
    if (left <= 0) done();
  };
  if (left <= 0) return done();
  socket.on('data', count);
}

/** Sends `size` bytes as fast as the socket takes them; input after the command is discarded. */
function source(socket: Socket, size: number): void {
  socket.resume();
  let left = size;
  const pump = (): void => {
    while (left > 0 && !socket.destroyed) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

/**
 * One TLS hop and nothing else: TLS in, plain TCP out to the bench server, piped both ways.
 * The same certificate and key as the proxy, so its cost is the proxy's TLS cost without the
 * HTTP and routing around it.
 */
async function startTlsTerminator(targetPort: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createTlsServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem'), allowHalfOpen: true }, (client: TLSSocket) => {
    const upstream = netConnect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.setNoDelay(true);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

async function main(): Promise<void> {
  const bench = await startTcpServer(serve);
  const terminator = await startTlsTerminator(bench.port);
  // The UDP echo: every datagram straight back to its sender.
  const udpEcho = createSocket('udp4');
  udpEcho.on('message', (message, peer) => udpEcho.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => udpEcho.bind(0, '127.0.0.1', resolve));
  const udpEchoPort = udpEcho.address().port;
  const proxy = await startFakePomerium({
    routes: [
      { from: `tcp+https://${BENCH_DEST}`, to: `tcp://${bench.address}` },
      { from: `wss://localhost${WS_PATH}`, to: `tcp://${bench.address}` },
      { from: `udp+https://${UDP_BENCH_DEST}`, to: `udp://127.0.0.1:${udpEchoPort}` },
      // The ssh section's sshd, started by the coordinator (run.ts) when that section runs.
      ...(process.env.BENCH_SSHD ? [{ from: `tcp+https://${SSH_BENCH_HOST}:22`, to: `tcp://${process.env.BENCH_SSHD}` }] : []),
    ],
  });
  const token = proxy.mintToken({ ttlSeconds: 6 * 3600 });
  const ready: ServersReady = {
    benchPort: bench.port,
    tlsPort: terminator.port,
    udpEchoPort,
    proxyUrl: proxy.url,
    proxyPort: proxy.port,
    caPath: proxy.caPath,
    token,
  };
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    terminator.close();
    udpEcho.close();
    await proxy.close();
    await bench.close();
    process.exit(0);
  };
  process.on('message', (message) => {
    if (message === 'stop') void stop();
    if (message === 'stats') process.send?.({ openTunnels: proxy.openTunnels, connects: proxy.stats.connects });
  });
  // The parent went away (crashed, killed): never outlive it.
  process.on('disconnect', () => void stop());
  process.send?.(ready);
}

await main();
