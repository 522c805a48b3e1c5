/**
 * The transport boundary. A transport opens one tunnel to a target and hands back a `Tunnel`:
 * the raw byte stream plus what the session needs to know about it without knowing how it is
 * carried (its progress counters, how to end our side, what its library's errors mean). It
 * never pipes; splicing is the session's job (pomerium-cli's TCPTunneler, wstunnel's
 * TunnelConnector). Failures to open are BurrowErrors, mapped at the transport's own boundary.
 *
 * Adding a transport is one file implementing `Transport` plus one entry in transports.ts.
 * Datagram routes (UDP) have their own sibling interface in datagram.ts.
 */
import type { Duplex } from 'node:stream';
import type { Target } from '../target.js';

export interface OpenRequest {
  target: Target;
  /** The identity token to present, or undefined to try without one. */
  token: string | undefined;
  signal?: AbortSignal | undefined;
}

/** What a tunnel has moved so far, sampled by timers (the stall watchdog, the close rules). */
export interface Progress {
  /** Bytes handed to the network since the tunnel opened (framing included). */
  readonly sent: number;
  /** Bytes received from the network since the tunnel opened, the ones delivered with the answer included. */
  readonly received: number;
  /** Bytes written to the tunnel that are still waiting to go out. */
  readonly queued: number;
}

export interface Tunnel {
  /** The raw byte stream to the destination. Handed over paused. */
  readonly stream: Duplex;
  progress(): Progress;
  /**
   * Ends our side once the local side has finished sending: a half-close, or the transport's
   * nearest equivalent. The session calls it instead of `stream.end()`. Settles once everything
   * written has been handed to the wire (or the connection is gone): only then may the tunnel
   * be destroyed without losing bytes still queued for the proxy.
   */
  finish(): Promise<void>;
  /**
   * What an error that ended the stream means: words for "the tunnel broke: …", or undefined
   * for an ordinary ending (the far side went away). Library errors stop here.
   */
  explain(error: Error): string | undefined;
}

export interface Transport {
  readonly name: string;
  /**
   * Whether its bytes pass through JavaScript one message at a time (WebSocket frames, parsed and
   * masked) rather than straight between native sockets (a CONNECT stream). Only the first kind
   * gains from V8's optimizing compiler (docs/performance.md, "The stdio round trip's p99").
   */
  readonly framesInJavaScript: boolean;
  open(request: OpenRequest): Promise<Tunnel>;
}

/** Error codes that are how sockets normally end when the other side goes away first. */
const NORMAL_ENDINGS = new Set(['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ABORT_ERR']);

/**
 * The meaning of a socket-level error that ended a tunnel (the part every transport shares):
 * a reset from the proxy is a break; a plain close is not, because Node cannot tell a TLS
 * close_notify from a bare FIN.
 */
export function explainSocketError(error: Error): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset';
  if (code !== undefined && NORMAL_ENDINGS.has(code)) return undefined;
  return code ? `${code}` : error.message;
}
