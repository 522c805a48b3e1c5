/**
 * CONNECT-UDP over HTTP/1.1 (RFC 9298, the form Pomerium's `udp+https://` routes accept on
 * their TLS port): TLS to the proxy with ALPN http/1.1, a `GET /.well-known/masque/udp/{host}/
 * {port}/` upgrade to `connect-udp` with the token, then DATAGRAM capsules both ways
 * (capsule.ts). Envoy answers 200 rather than the RFC's 101; both open the tunnel. Other
 * answers mean what they mean to CONNECT (status.ts). Bytes after the answer head are the
 * start of the capsule stream.
 */
import type { Socket } from 'node:net';
import { ProxyProtocolError, TunnelBrokenError } from '../errors.js';
import { type RouteOptions, routeHeaders } from '../net/route.js';
import { text } from '../output/messages.js';
import type { Target } from '../target.js';
import { CapsuleError, CapsuleParser, encodeDatagramCapsule, MAX_UDP_PAYLOAD } from './capsule.js';
import { requestOverHttp1 } from './connect.js';
import type { DatagramCounters, DatagramTransport, DatagramTunnel } from './datagram.js';
import { explainSocketError, type OpenRequest } from './transport.js';

/**
 * Bytes that may wait in the socket's write buffer before datagrams are dropped instead of
 * queued: enough for a burst of full-size datagrams, small enough to keep latency bounded.
 */
export const MAX_QUEUED_BYTES = 256 * 1024;

/** RFC 6570 simple expansion, as RFC 9298's URI template uses it: all but unreserved is %XX. */
export function expandTemplateValue(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The request path for a UDP destination; IPv6 literals without brackets, their colons encoded. */
export function connectUdpPath(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return `/.well-known/masque/udp/${expandTemplateValue(bare)}/${port}/`;
}

/** Builds the upgrade request head. The token goes only here, inside TLS. */
export function connectUdpRequest(target: Target, token: string | undefined, route: RouteOptions): string {
  const { host, port, authority } = target.destination;
  let head = `GET ${connectUdpPath(host, port)} HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n`;
  for (const [name, value] of routeHeaders(route, token)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

export class ConnectUdpTransport implements DatagramTransport {
  readonly name = 'connect-udp';
  readonly #route: RouteOptions;

  constructor(route: RouteOptions) {
    this.#route = route;
  }

  async open(request: OpenRequest): Promise<DatagramTunnel> {
    const { target, token } = request;
    const socket = await requestOverHttp1(request, this.#route, connectUdpRequest(target, token, this.#route), { upgrade: true });
    return capsuleTunnel(socket, target.proxy.origin, target.destination.authority);
  }
}

/** The socket after the answer head as a datagram tunnel. */
function capsuleTunnel(socket: Socket, proxy: string, dest: string): DatagramTunnel {
  socket.setNoDelay(true);
  let sent = 0;
  let sentBytes = 0;
  let received = 0;
  let receivedBytes = 0;
  let dropped = 0;
  let receiver: ((payload: Buffer) => void) | undefined;
  const parser = new CapsuleParser((payload) => {
    received++;
    receivedBytes += payload.length;
    receiver?.(payload);
  });
  let failure: Error | undefined;
  const closed = new Promise<Error | undefined>((resolve) => socket.once('close', () => resolve(failure)));
  const fail = (error: Error): void => {
    failure ??= error;
    socket.destroy();
  };
  socket.on('data', (chunk: Buffer) => {
    try {
      parser.push(chunk);
    } catch (error) {
      if (!(error instanceof CapsuleError)) throw error;
      fail(new ProxyProtocolError(text.tunnelBroken(proxy, dest, error.message), { hint: text.malformedAnswerHint }));
    }
  });
  socket.on('end', () => socket.destroy());
  socket.on('error', (error) => {
    const reason = explainSocketError(error);
    // A reset or a lost connection breaks the tunnel (as it does a stream's); only capsules the
    // proxy should not have sent are its protocol's fault.
    if (reason) failure ??= new TunnelBrokenError(text.tunnelBroken(proxy, dest, reason), { hint: text.tunnelBrokenHint, cause: error });
    socket.destroy();
  });
  // Reading starts with the first receiver, so no datagram that came with the answer is lost.
  const counters = (): DatagramCounters => ({ sent, sentBytes, received, receivedBytes, dropped: dropped + parser.counts().otherContext });
  return {
    send(payload) {
      if (payload.length > MAX_UDP_PAYLOAD || socket.destroyed || !socket.writable || socket.writableLength > MAX_QUEUED_BYTES) {
        dropped++;
        return false;
      }
      socket.write(encodeDatagramCapsule(payload));
      sent++;
      sentBytes += payload.length;
      return true;
    },
    onDatagram(next) {
      receiver = next;
      socket.resume();
    },
    closed,
    counters,
    close() {
      socket.destroy();
    },
  };
}
