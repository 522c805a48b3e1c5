/**
 * The datagram-shaped sibling of `Transport` (transport.ts), for routes that carry UDP
 * (Pomerium's `udp+https://` routes, CONNECT-UDP: RFC 9298 with HTTP Datagrams in capsules).
 * A stream interface does not fit: datagrams keep their boundaries, may be dropped rather than
 * queued, and one local socket serves many peers, each with a tunnel of its own.
 *
 * One `DatagramTunnel` per local peer (source address): the peer's datagrams go in through
 * `send`, the proxy's come out through `onDatagram`, in order, boundaries kept.
 */
import type { OpenRequest } from './transport.js';

export interface DatagramCounters {
  /** Datagrams sent to the proxy, and their payload bytes. */
  readonly sent: number;
  readonly sentBytes: number;
  /** Datagrams received from the proxy, and their payload bytes. */
  readonly received: number;
  readonly receivedBytes: number;
  /** Datagrams dropped: too large for the path, or queued behind a full connection. */
  readonly dropped: number;
}

export interface DatagramTunnel {
  /**
   * Sends one datagram. Never blocks and never queues without bound: returns false when the
   * datagram was dropped (too large, or the connection is backed up), which UDP allows.
   */
  send(payload: Uint8Array): boolean;
  /** Registers the receiver of the proxy's datagrams (one at a time); reading starts with the first. */
  onDatagram(receiver: (payload: Buffer) => void): void;
  /** Resolves when the tunnel is over, with the error that ended it, if any. */
  readonly closed: Promise<Error | undefined>;
  counters(): DatagramCounters;
  /** Ends the tunnel (idle timeout, shutdown). */
  close(): void;
}

export interface DatagramTransport {
  readonly name: string;
  open(request: OpenRequest): Promise<DatagramTunnel>;
}
