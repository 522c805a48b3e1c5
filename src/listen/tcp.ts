/**
 * The TCP listener: every accepted connection is a Duplex handed to a session. Sockets are
 * half-open capable (so a client's EOF reaches the far end as a half-close), TCP keepalive (a
 * vanished peer is noticed) and no-delay (interactive ssh must not wait for Nagle).
 */
import { on } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
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
  /**
   * Called when a connection is refused because the open-files limit has no room for another
   * tunnel (see `tunnelCapacity`): the client's connection is closed at once.
   */
  onFull?: (peer: string, capacity: { tunnels: number; limit: number }) => void;
}

/**
 * Descriptors kept free beyond the tunnels: a sign-in (callback server, browser pipes, lock and
 * credential files, the keychain's D-Bus socket) and name lookups use a few for a moment.
 */
const FD_SLACK = 16;

/**
 * How many tunnels (two descriptors each: the local connection and the proxy's) fit under this
 * process's open-files limit, counted from the descriptors it holds now. Linux only; elsewhere,
 * or when the limit is unlimited or unreadable, undefined (no cap). A cap makes the connection
 * beyond it a reported refusal: without one, libuv accepts and closes connections it has no
 * descriptor for without telling anyone.
 */
export function tunnelCapacity(): { tunnels: number; limit: number } | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (soft === undefined) return undefined;
    const limit = Number(soft);
    return { tunnels: Math.max(1, Math.floor((limit - readdirSync('/proc/self/fd').length - FD_SLACK) / 2)), limit };
  } catch {
    return undefined;
  }
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
  const capacity = tunnelCapacity();
  if (capacity) {
    server.maxConnections = capacity.tunnels;
    server.on('drop', (peer?: net.DropArgument) => options.onFull?.(formatAuthority(peer?.remoteAddress ?? '?', peer?.remotePort ?? 0), capacity));
  }
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
