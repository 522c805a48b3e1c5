/**
 * The accept loop of every long-running command: one session per connection a listener hands
 * out, until told to stop; then the listener closes and every open session is waited for.
 * The listener keeps serving whatever one session does: each reports its own events.
 */
import { setMaxListeners } from 'node:events';
import type { BurrowError } from '../errors.js';
import type { Listener, LocalConnection } from '../listen/connection.js';

/** Starts the tunnel for one connection; `conn` numbers them from 1; resolves when it is over. */
export type SessionFactory = (connection: LocalConnection, conn: number, signal: AbortSignal) => Promise<unknown>;

export interface ServeOptions {
  /** Stops accepting, and tells every open session to close. */
  signal: AbortSignal;
  /**
   * Hears about connections the listener refused, at most one a second: at the open-files limit
   * every connection fails alike, and one line says it.
   */
  onRefused?: ((error: BurrowError) => void) | undefined;
  /** Called once when the signal fires, with the number of sessions still open. */
  onStop?: ((open: number) => void) | undefined;
  /** The clock for the refusal throttle. */
  now?: () => number;
}

/** Refusal lines are at most this often. */
const REFUSAL_INTERVAL_MS = 1000;

/** Serves `listener` until `options.signal` fires and every session has ended. */
export async function serve(listener: Listener, session: SessionFactory, options: ServeOptions): Promise<void> {
  const { signal } = options;
  const now = options.now ?? Date.now;
  let lastRefusal = Number.NEGATIVE_INFINITY;
  listener.onRefused((error) => {
    if (now() - lastRefusal < REFUSAL_INTERVAL_MS) return;
    lastRefusal = now();
    options.onRefused?.(error);
  });
  // Every open tunnel listens for shutdown on this one signal: no "possible leak" warning at 11.
  setMaxListeners(0, signal);
  const open = new Set<Promise<unknown>>();
  const stop = () => {
    options.onStop?.(open.size);
    void listener.close();
  };
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  let conn = 0;
  for await (const connection of listener.connections()) {
    const running = session(connection, ++conn, signal).catch(() => {});
    open.add(running);
    void running.finally(() => open.delete(running));
  }
  await Promise.all(open);
}
