/**
 * What a listener hands out: one local connection, as the two streams a tunnel joins. A
 * socket is both (`input === output`); stdio is stdin and stdout.
 */
import type { Readable, Writable } from 'node:stream';
import type { BurrowError } from '../errors.js';

export interface LocalConnection {
  /** What the local side sends: a socket, or stdin. */
  readonly input: Readable;
  /** Where the tunnel's bytes go: the same socket, or stdout. */
  readonly output: Writable;
  /** `host:port` of the peer (`stdio` for stdin/stdout), for log lines. */
  readonly peer: string;
}

/** A source of local connections that runs until closed (tunnel/serve.ts drives it). */
export interface Listener {
  /** The bound address as `host:port` (the real port when 0 was asked for). */
  readonly address: string;
  /** Yields accepted connections until `close()`. */
  connections(): AsyncIterable<LocalConnection>;
  /**
   * Registers the one receiver of connections refused or lost at accept time (out of file
   * descriptors, no room for another tunnel), each as the error that says why. The listener
   * keeps serving.
   */
  onRefused(receiver: (error: BurrowError) => void): void;
  /** Stops accepting. Open connections are the sessions' to end. */
  close(): Promise<void>;
}
