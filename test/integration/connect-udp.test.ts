/**
 * The CONNECT-UDP transport against the project's local proxy (real TLS, the masque upgrade,
 * capsules both ways) in front of a real UDP echo server on loopback.
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseTarget } from '../../src/cli/destination.js';
import { AccessDeniedError, AuthRequiredError, ProxyProtocolError, RouteNotFoundError } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { encodeDatagramCapsule, encodeVarint, MAX_DATAGRAM_CAPSULE } from '../../src/tunnel/capsule.js';
import { buildTls } from '../../src/net/tls.js';
import { ConnectUdpTransport } from '../../src/tunnel/connect-udp.js';
import type { DatagramTunnel } from '../../src/tunnel/datagram.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { within } from '../helpers/world.js';

/** A UDP server that sends every datagram back to where it came from. */
async function echoServer(type: 'udp4' | 'udp6'): Promise<{ socket: UdpSocket; port: number }> {
  const socket = createSocket(type);
  socket.on('message', (message, peer) => socket.send(message, peer.port, peer.address));
  await new Promise<void>((resolve) => socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', resolve));
  return { socket, port: (socket.address() as AddressInfo).port };
}

/** Collects `count` datagrams from the tunnel, or what came within `ms`. */
function receive(tunnel: DatagramTunnel, count: number, ms = 5000): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const timer = setTimeout(() => resolve(got), ms);
    tunnel.onDatagram((payload) => {
      got.push(Buffer.from(payload));
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

/** A payload whose bytes depend on its index and size, so a mix-up shows. */
function payload(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

describe('CONNECT-UDP transport', () => {
  let proxy: FakePomerium;
  let echo4: { socket: UdpSocket; port: number };
  let echo6: { socket: UdpSocket; port: number };
  const transport = new ConnectUdpTransport({ tls: buildTls({ alternateCaPath: fixture('ca.pem') }, {}), connectTimeoutMs: 5000, userAgent: 'burrow/test' });
  const tunnels: DatagramTunnel[] = [];

  before(async () => {
    echo4 = await echoServer('udp4');
    echo6 = await echoServer('udp6');
    proxy = await startFakePomerium({
      routes: [
        { from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${echo4.port}` },
        { from: 'udp+https://[2001:db8::1]:53', to: `udp://[::1]:${echo6.port}` },
        { from: 'udp+https://secret.corp.test:53', to: `udp://127.0.0.1:${echo4.port}`, allow: ['bob@corp.test'] },
      ],
    });
  });

  after(async () => {
    for (const tunnel of tunnels) tunnel.close();
    await proxy.close();
    echo4.socket.close();
    echo6.socket.close();
  });

  const open = async (dest: string, token: string | null = proxy.mintToken()) => {
    const tunnel = await transport.open({ target: parseTarget(dest, proxy.url), token: token ?? undefined });
    tunnels.push(tunnel);
    return tunnel;
  };

  it('carries datagrams both ways with their boundaries, 0 B to the largest IPv4 payload', async () => {
    const tunnel = await open('dns.corp.test:53');
    const sizes = [0, 1, 1200, 65507];
    const replies = receive(tunnel, sizes.length);
    for (const [i, size] of sizes.entries()) assert.equal(tunnel.send(payload(size, i)), true);
    const got = await replies;
    assert.deepEqual(
      got.map((p) => p.length),
      sizes,
    );
    for (const [i, size] of sizes.entries()) assert.ok(got[i]!.equals(payload(size, i)), `datagram ${i} (${size} B) content`);
    const counters = tunnel.counters();
    assert.equal(counters.sent, 4);
    assert.equal(counters.received, 4);
    assert.equal(counters.sentBytes, 0 + 1 + 1200 + 65507);
    assert.equal(counters.dropped, 0);
  });

  it('carries 65527 B (the largest UDP payload) to an IPv6 destination, whose path is percent-encoded', async () => {
    const tunnel = await open('[2001:db8::1]:53');
    const replies = receive(tunnel, 1);
    assert.equal(tunnel.send(payload(65527, 9)), true);
    const [got] = await replies;
    assert.ok(got?.equals(payload(65527, 9)));
    const request = proxy.requests.filter((r) => r.url.startsWith('/.well-known/masque/udp/2001')).at(-1);
    assert.equal(request?.url, '/.well-known/masque/udp/2001%3Adb8%3A%3A1/53/');
    assert.equal(request?.headers.host, '[2001:db8::1]:53');
    assert.equal(request?.headers.upgrade, 'connect-udp');
    assert.equal(request?.headers['capsule-protocol'], '?1');
    assert.equal(request?.headers.authorization, '[hidden]');
  });

  it('drops a payload over 65527 B and counts it, without ending the tunnel', async () => {
    const tunnel = await open('dns.corp.test:53');
    assert.equal(tunnel.send(Buffer.alloc(65528)), false);
    const replies = receive(tunnel, 1);
    tunnel.send(Buffer.from('after'));
    assert.deepEqual(await replies, [Buffer.from('after')]);
    assert.equal(tunnel.counters().dropped, 1);
  });

  it('keeps many datagrams in order', async () => {
    const tunnel = await open('dns.corp.test:53');
    // In windows of 100: a loopback UDP socket's default receive buffer holds about 256 small
    // datagrams, and UDP is allowed to drop the rest.
    const got: string[] = [];
    for (let window = 0; window < 5; window++) {
      const replies = receive(tunnel, 100);
      for (let i = 0; i < 100; i++) assert.equal(tunnel.send(Buffer.from(`datagram ${window * 100 + i}`)), true);
      got.push(...(await replies).map(String));
    }
    assert.deepEqual(
      got,
      Array.from({ length: 500 }, (_, i) => `datagram ${i}`),
    );
  });

  it('opens on the RFC 101 answer as on Envoy 200', async () => {
    const other = await startFakePomerium({ udpAnswer: 101, routes: [{ from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${echo4.port}` }] });
    try {
      const tunnel = await transport.open({ target: parseTarget('dns.corp.test:53', other.url), token: other.mintToken() });
      const replies = receive(tunnel, 1);
      tunnel.send(Buffer.from('ping'));
      assert.deepEqual(await replies, [Buffer.from('ping')]);
      assert.equal(other.stats.upgradesByStatus[101], 1);
      tunnel.close();
    } finally {
      await other.close();
    }
  });

  it('without a token: the sign-in answer (302, or 401) becomes AuthRequiredError', async () => {
    await assert.rejects(open('dns.corp.test:53', null), (error: unknown) => error instanceof AuthRequiredError && (error as AuthRequiredError).status === 302);
    const other = await startFakePomerium({ unauthenticatedStatus: 401, routes: [{ from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${echo4.port}` }] });
    try {
      await assert.rejects(transport.open({ target: parseTarget('dns.corp.test:53', other.url), token: undefined }), AuthRequiredError);
    } finally {
      await other.close();
    }
  });

  it('403 and 404 mean what they mean to tcp', async () => {
    await assert.rejects(open('secret.corp.test:53'), AccessDeniedError);
    await assert.rejects(open('nowhere.corp.test:53'), RouteNotFoundError);
  });

  it('the proxy refuses an upgrade without Capsule-Protocol with 400, as Envoy does', async () => {
    const socket = tlsConnect({ host: '127.0.0.1', port: proxy.port, servername: 'localhost', ca: readFixture('ca.pem'), ALPNProtocols: ['http/1.1'] });
    try {
      await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      socket.write(`GET /.well-known/masque/udp/dns.corp.test/53/ HTTP/1.1\r\nHost: dns.corp.test:53\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\nAuthorization: Pomerium ${proxy.mintToken()}\r\n\r\n`);
      const first = await new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString('latin1'))));
      assert.match(first, /^HTTP\/1\.1 400 /);
    } finally {
      socket.destroy();
    }
  });

  it('close ends the tunnel cleanly and the proxy lets go of it', async () => {
    const tunnel = await open('dns.corp.test:53');
    const before = proxy.openTunnels;
    assert.ok(before >= 1);
    tunnel.close();
    assert.equal(await within(tunnel.closed, 3000, new Error('still open')), undefined);
    const deadline = Date.now() + 3000;
    while (proxy.openTunnels >= before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(proxy.openTunnels, before - 1);
    assert.equal(tunnel.send(Buffer.from('late')), false);
  });

  it('a proxy that stops reading makes datagrams drop, counted, while the queue stays bounded', async () => {
    // A TLS server that answers 200 and then never reads: the kernel buffers fill, then ours.
    const held = new Set<TLSSocket>();
    const server = createTlsServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem') }, (socket) => {
      held.add(socket);
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.pause();
        socket.write('HTTP/1.1 200 OK\r\n\r\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const tunnel = await transport.open({ target: parseTarget('dns.corp.test:53', `https://localhost:${port}`), token: proxy.mintToken() });
      const big = Buffer.alloc(60000, 1);
      let refused = 0;
      for (let i = 0; i < 2000 && refused < 50; i++) {
        if (!tunnel.send(big)) refused++;
        if (i % 50 === 49) await new Promise((r) => setImmediate(r));
      }
      const counters = tunnel.counters();
      assert.equal(refused, 50, 'datagrams dropped once the connection backed up');
      assert.equal(counters.dropped, 50);
      assert.ok(counters.sent > 0);
      // What was accepted is what the kernel's buffers took plus our bound, not all 2000.
      assert.ok(counters.sentBytes < 32 * 1024 * 1024, `${counters.sentBytes} B accepted`);
      tunnel.close();
      await within(tunnel.closed, 3000, new Error('still open'));
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('the proxy going down ends the tunnel', async () => {
    const other = await startFakePomerium({ routes: [{ from: 'udp+https://dns.corp.test:53', to: `udp://127.0.0.1:${echo4.port}` }] });
    let tunnel: DatagramTunnel | undefined;
    try {
      tunnel = await transport.open({ target: parseTarget('dns.corp.test:53', other.url), token: other.mintToken() });
      await other.close({ reset: true });
      const ended = await within(
        tunnel.closed.then(() => 'closed'),
        3000,
        'still open',
      );
      assert.equal(ended, 'closed');
      assert.equal(tunnel.send(Buffer.from('late')), false);
    } finally {
      tunnel?.close();
      await other.close();
    }
  });

  it('an oversize capsule from the proxy ends the tunnel with a protocol error, after the good datagram before it', async () => {
    const held = new Set<TLSSocket>();
    const server = createTlsServer({ cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem') }, (socket) => {
      held.add(socket);
      socket.on('error', () => {});
      socket.once('data', () => {
        // The head, one good datagram and the header of a DATAGRAM too long to accept, in one write.
        socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n\r\n'), encodeDatagramCapsule(Buffer.from('good')), encodeVarint(0), encodeVarint(MAX_DATAGRAM_CAPSULE + 1)]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const tunnel = await transport.open({ target: parseTarget('dns.corp.test:53', `https://localhost:${port}`), token: proxy.mintToken() });
      const got: string[] = [];
      tunnel.onDatagram((p) => got.push(String(p)));
      const error = await within(tunnel.closed, 3000, new Error('still open'));
      assert.ok(error instanceof ProxyProtocolError, String(error));
      assert.ok(error.message.includes(text.capsuleTooLong(String(MAX_DATAGRAM_CAPSULE + 1), MAX_DATAGRAM_CAPSULE)), error.message);
      assert.deepEqual(got, ['good']);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
