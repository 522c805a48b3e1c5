/**
 * The UDP listener: one `node:dgram` socket on the local address. Every datagram arrives with
 * the peer that sent it; replies go back to that peer through the same socket. Sends never
 * block: when the socket's send queue is long (a peer the kernel cannot hand datagrams to fast
 * enough), a reply is dropped, as UDP allows, and counted by the caller.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { formatAuthority } from '../target.js';
import { DescriptorBudget, listenFailure } from './bind.js';

/** The local sender of a datagram. */
export interface UdpPeer {
  address: string;
  port: number;
}

export interface UdpListener {
  /** The bound address as `host:port` (the real port when 0 was asked for). */
  readonly address: string;
  /** Registers the one receiver of datagrams. */
  onDatagram(receiver: (payload: Buffer, peer: UdpPeer) => void): void;
  /** Sends `payload` to `peer`; false when it was dropped (the send queue is full). */
  send(payload: Buffer, peer: UdpPeer): boolean;
  /**
   * The descriptors its sessions may take (each holds one, its connection to the proxy), shared
   * with the process's other listeners; undefined: no cap known.
   */
  readonly budget: DescriptorBudget | undefined;
  close(): Promise<void>;
}

/** Datagrams that may wait in the socket's send queue before replies are dropped. */
const MAX_SEND_QUEUE = 1024;
/** Socket buffers asked for (the kernel may grant less): bursts of replies fit without loss. */
const SOCKET_BUFFER = 4 * 1024 * 1024;

/**
 * Binds `host:port`. `shared` is the budget of all the process's listeners (`burrow up`);
 * without one, the listener measures its own once bound.
 */
export async function listenUdp(host: string, port: number, shared?: DescriptorBudget): Promise<UdpListener> {
  const socket: Socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
  const where = formatAuthority(host, port);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error: NodeJS.ErrnoException) => reject(listenFailure(where, error)));
    socket.bind({ address: host, port, exclusive: true }, () => resolve());
  });
  socket.removeAllListeners('error');
  // A send to a peer that went away (ICMP port unreachable) surfaces here: UDP carries on.
  socket.on('error', () => {});
  for (const set of [socket.setRecvBufferSize, socket.setSendBufferSize]) {
    try {
      set.call(socket, SOCKET_BUFFER);
    } catch {
      // Refused by the kernel's limits: the default buffers work, with less room for bursts.
    }
  }
  const bound = socket.address();
  let receiver: ((payload: Buffer, peer: UdpPeer) => void) | undefined;
  socket.on('message', (payload: Buffer, info: RemoteInfo) => receiver?.(payload, { address: info.address, port: info.port }));
  let closed = false;
  shared?.reserve(1);
  return {
    address: formatAuthority(bound.address, bound.port),
    budget: shared ?? DescriptorBudget.measure(),
    onDatagram(next) {
      receiver = next;
    },
    send(payload, peer) {
      if (closed || socket.getSendQueueCount() >= MAX_SEND_QUEUE) return false;
      socket.send(payload, peer.port, peer.address);
      return true;
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      shared?.unreserve(1);
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}
