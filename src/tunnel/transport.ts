/**
 * A transport opens one tunnel: it hands back a connected Duplex carrying the raw stream, or
 * throws a BurrowError. It never pipes; splicing is the session's job (pomerium-cli's
 * TCPTunneler, wstunnel's TunnelConnector).
 */
import type { Duplex } from 'node:stream';
import type { Target } from '../cli/destination.js';

export interface OpenRequest {
  target: Target;
  /** The identity token to present, or undefined to try without one. */
  token: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface Transport {
  readonly name: string;
  open(request: OpenRequest): Promise<Duplex>;
}
