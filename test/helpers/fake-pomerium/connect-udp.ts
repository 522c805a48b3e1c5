/**
 * CONNECT-UDP tunnels over HTTP/1.1 (RFC 9298, as Envoy in front of Pomerium serves them):
 * `GET /.well-known/masque/udp/{host}/{port}/` with `Upgrade: connect-udp` and
 * `Capsule-Protocol: ?1`, the same preamble as CONNECT (preamble.ts), then `200 OK` (Envoy) or
 * `101 Switching Protocols` (`udpAnswer: 101`), and DATAGRAM capsules relayed to a `node:dgram`
 * socket on loopback connected to the route's target, and its datagrams back as capsules.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { IncomingMessage } from 'node:http';
import { isIPv6 } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { CapsuleParser, encodeDatagramCapsule } from '../../../src/tunnel/capsule.js';
import type { ProxyContext } from './context.js';
import { type Answer, admitTunnel, type Destination } from './preamble.js';
import type { ParsedRoute } from './policy.js';

export const MASQUE_UDP_PREFIX = '/.well-known/masque/udp/';

/** The `host:port` a masque path names (IPv6 literals in brackets), or undefined. */
export function masqueAuthority(path: string): string | undefined {
  const match = /^\/\.well-known\/masque\/udp\/([^/]+)\/([0-9]{1,5})\/$/.exec(path);
  if (!match) return undefined;
  let host: string;
  try {
    host = decodeURIComponent(match[1]!).toLowerCase();
  } catch {
    return undefined;
  }
  return `${host.includes(':') ? `[${host}]` : host}:${Number(match[2])}`;
}

function openUdp(route: ParsedRoute): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const v6 = isIPv6(route.toHost);
    const udp = createSocket(v6 ? 'udp6' : 'udp4');
    udp.once('error', reject);
    udp.bind(0, v6 ? '::1' : '127.0.0.1', () => {
      udp.connect(route.toPort, route.toHost, () => {
        udp.off('error', reject);
        resolve(udp);
      });
    });
  });
}

export async function handleConnectUdp(ctx: ProxyContext, req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
  ctx.stats.upgrades++;
  const target = req.url ?? '/';
  const method = req.method ?? 'GET';
  const admitted = await admitTunnel<Destination, UdpSocket>(ctx, socket, {
    headers: req.headers,
    requestMethod: 'GET',
    eventMethod: method,
    target,
    hook: { method, url: target, headers: req.headers, upgrade: true },
    byStatus: ctx.stats.upgradesByStatus,
    resolve: (): Destination | Answer => {
      // Envoy refuses an upgrade that is not a well-formed CONNECT-UDP request with 400.
      if (method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'connect-udp' || req.headers['capsule-protocol'] !== '?1') {
        return { status: 400, headers: {}, body: 'not a CONNECT-UDP request\n' };
      }
      const authority = masqueAuthority(target);
      if (!authority) return { status: 400, headers: {}, body: 'bad CONNECT-UDP target\n' };
      return { route: ctx.routes.udp(authority), signInTarget: `https://${authority}/` };
    },
    dial: openUdp,
    release: (udp) => udp.close(),
  });
  if (!admitted) return;
  const { upstream: udp, count } = admitted;
  const answer =
    ctx.settings.udpAnswer === 101 ? 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n\r\n' : 'HTTP/1.1 200 OK\r\nCapsule-Protocol: ?1\r\n\r\n';
  count(ctx.settings.udpAnswer ?? 200);
  const after = ctx.settings.udpAfterAnswer?.({ method, url: target, headers: req.headers, upgrade: true });
  socket.write(after ? Buffer.concat([Buffer.from(answer), after]) : answer);
  relay(socket, udp, ctx.openTunnel());
  if (head.length > 0) socket.unshift(head);
}

/** Capsules from the client become datagrams to the target and back; either end closing ends both. */
function relay(client: TLSSocket, udp: UdpSocket, onClosed: () => void): void {
  client.setNoDelay(true);
  let done = false;
  const teardown = (): void => {
    if (done) return;
    done = true;
    client.destroy();
    try {
      udp.close();
    } catch {
      // Already closed.
    }
    onClosed();
  };
  const parser = new CapsuleParser((payload) => udp.send(payload));
  client.on('data', (chunk: Buffer) => {
    try {
      parser.push(chunk);
    } catch {
      teardown();
    }
  });
  client.on('end', teardown);
  client.on('close', teardown);
  client.on('error', teardown);
  udp.on('error', () => {
    // ICMP port unreachable and the like: UDP carries on.
  });
  udp.on('message', (message) => {
    if (!client.destroyed) client.write(encodeDatagramCapsule(message));
  });
  client.resume();
}
