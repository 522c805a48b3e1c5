/**
 * The TCP listener: every accepted connection is a Duplex handed to a session. Sockets are
 * half-open capable (so a client's EOF reaches the far end as a half-close), TCP keepalive (a
 * vanished peer is noticed) and no-delay (interactive ssh must not wait for Nagle).
 */
import { on } from 'node:events';
import net from 'node:net';
import type { LocalEnd } from '../tunnel/splice.js';
import { ListenError } from '../errors.js';
import { text } from '../output/messages.js';
import { formatAuthority } from '../cli/destination.js';

export interface LocalConnection extends LocalEnd {
  /** `host:port` of the peer, for log lines. */
  peer: string;
}

export interface TcpListener {
  /** The bound address as `host:port` (the real port when 0 was asked for). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** Yields accepted connections until `close()`. */
  connections(): AsyncIterable<LocalConnection>;
  /** Stops accepting. Open connections are the sessions' to end. */
  close(): Promise<void>;
}

export interface ListenOptions {
  /**
   * Called when accepting a connection fails after start-up (EMFILE: out of file descriptors).
   * libuv then accepts and closes the pending connection, so the client sees it closed; the
   * listener itself keeps serving.
   */
  onAcceptError?: (error: NodeJS.ErrnoException) => void;
}

export async function listenTcp(host: string, port: number, options: ListenOptions = {}): Promise<TcpListener> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const where = formatAuthority(host, port);
      const hint =
        error.code === 'EADDRINUSE' ? text.listenInUseHint : error.code === 'EACCES' ? text.listenPermissionHint : text.listenGenericHint;
      const reason = error.code === 'EADDRINUSE' ? 'address already in use' : error.code === 'EACCES' ? 'permission denied' : (error.code ?? error.message);
      reject(new ListenError(text.listenFailed(where, reason), { hint, cause: error }));
    });
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  const stop = new AbortController();
  // After start-up, accept errors (EMFILE and the like) are reported, not fatal.
  server.on('error', (error: NodeJS.ErrnoException) => options.onAcceptError?.(error));
  return {
    address: formatAuthority(bound.address, bound.port),
    host: bound.address,
    port: bound.port,
    async *connections() {
      try {
        for await (const [socket] of on(server, 'connection', { signal: stop.signal })) {
          const s = socket as net.Socket;
          yield { input: s, output: s, peer: formatAuthority(s.remoteAddress ?? '?', s.remotePort ?? 0) };
        }
      } catch (error) {
        if ((error as Error).name !== 'AbortError') throw error;
      }
    },
    close() {
      stop.abort();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
