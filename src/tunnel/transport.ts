/**
 * A transport opens one tunnel: it hands back a connected Duplex carrying the raw stream, or
 * throws a BurrowError. It never pipes; splicing is the session's job (pomerium-cli's
 * TCPTunneler, wstunnel's TunnelConnector).
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Target } from '../cli/destination.js';

export interface OpenRequest {
  target: Target;
  /** The identity token to present, or undefined to try without one. */
  token: string | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * What `open` hands back. `wire` is the socket under a stream that is not itself one (the TLS
 * socket under a WebSocket): its counters tell the stall watchdog whether bytes move.
 */
export type TunnelStream = Duplex & { readonly wire?: Socket | undefined };

export interface Transport {
  readonly name: string;
  open(request: OpenRequest): Promise<TunnelStream>;
}
