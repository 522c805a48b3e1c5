/**
 * The TCP listener: every accepted connection is a Duplex handed to a session. Sockets are
 * half-open capable (so a client's EOF reaches the far end as a half-close), TCP keepalive (a
 * vanished peer is noticed) and no-delay (interactive ssh must not wait for Nagle).
 */
import { on } from 'node:events';
import net from 'node:net';
import { ListenError } from '../errors.js';
import { errorWords, text } from '../output/messages.js';
import { formatAuthority } from '../target.js';
import type { BurrowError } from '../errors.js';
import { DescriptorBudget, listenFailure } from './bind.js';
import type { Listener, LocalConnection } from './connection.js';

export interface TcpListener extends Listener {
  readonly host: string;
  readonly port: number;
}

/** Descriptors a TCP tunnel holds: the local connection and the proxy's. */
const TUNNEL_DESCRIPTORS = 2;

/**
 * Binds `host:port` and serves connections until closed. Refusals after start-up are reported to
 * `onRefused`: accept failures (EMFILE: libuv then accepts and closes the pending connection,
 * so the client sees it closed) and connections the descriptor budget has no room for (closed at
 * once). `shared` is the budget of all the process's listeners (`burrow up`); without one, the
 * listener measures its own once bound.
 */
export async function listenTcp(host: string, port: number, shared?: DescriptorBudget): Promise<TcpListener> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true, keepAlive: true, keepAliveInitialDelay: 30_000 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => reject(listenFailure(formatAuthority(host, port), error)));
    server.listen({ host, port, exclusive: true }, () => resolve());
  });
  const bound = server.address() as net.AddressInfo;
  const stop = new AbortController();
  const address = formatAuthority(bound.address, bound.port);
  let refused: ((error: BurrowError) => void) | undefined;
  // After start-up, accept errors (EMFILE and the like) are reported, not fatal.
  server.on('error', (error: NodeJS.ErrnoException) => {
    const tooMany = error.code === 'EMFILE' || error.code === 'ENFILE';
    const reason = tooMany ? 'too many open files' : errorWords(error.code ?? '', error.message);
    refused?.(new ListenError(text.acceptFailed(address, reason), { hint: tooMany ? text.tooManyFilesHint : text.listenGenericHint, cause: error }));
  });
  shared?.reserve(1);
  const budget = shared ?? DescriptorBudget.measure();
  if (budget) {
    // Registered before connections() listens: a connection refused here is never handed out.
    server.on('connection', (socket: net.Socket) => {
      if (budget.take(TUNNEL_DESCRIPTORS)) {
        socket.once('close', () => budget.release(TUNNEL_DESCRIPTORS));
        return;
      }
      const from = formatAuthority(socket.remoteAddress ?? '?', socket.remotePort ?? 0);
      socket.destroy();
      refused?.(new ListenError(text.listenerFull(from, budget.open, budget.limit), { hint: text.tooManyFilesHint }));
    });
  }
  return {
    address,
    host: bound.address,
    port: bound.port,
    async *connections() {
      try {
        for await (const [socket] of on(server, 'connection', { signal: stop.signal })) {
          const s = socket as net.Socket;
          if (s.destroyed) continue;
          yield { input: s, output: s, peer: formatAuthority(s.remoteAddress ?? '?', s.remotePort ?? 0) };
        }
      } catch (error) {
        if ((error as Error).name !== 'AbortError') throw error;
      }
    },
    onRefused(receiver) {
      refused = receiver;
    },
    close() {
      if (stop.signal.aborted) return Promise.resolve();
      stop.abort();
      shared?.unreserve(1);
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
