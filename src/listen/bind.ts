/**
 * What the listeners (tcp.ts, udp.ts) share about the address they bind and the descriptors
 * they may use: one mapping from a bind error to the line and hint users see, and one count of
 * the tunnels this process's open-files limit leaves room for.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ListenError } from '../errors.js';
import { errorWords, text } from '../output/messages.js';

/** Why binding `where` (`host:port`) failed, as the error users see, with the fix for its kind. */
export function listenFailure(where: string, error: NodeJS.ErrnoException): ListenError {
  const hint =
    error.code === 'EADDRINUSE'
      ? text.listenInUseHint
      : error.code === 'EACCES'
        ? text.listenPermissionHint
        : error.code === 'EADDRNOTAVAIL'
          ? text.listenNotLocalHint
          : text.listenGenericHint;
  return new ListenError(text.listenFailed(where, errorWords(error.code ?? '', error.message)), { hint, cause: error });
}

/**
 * Descriptors kept free beyond the tunnels: a sign-in (callback server, browser pipes, lock and
 * credential files, the keychain's D-Bus socket) and name lookups use a few for a moment.
 */
const FD_SLACK = 16;

/**
 * How many tunnels fit under this process's open-files limit, counted from the descriptors it
 * holds now: `descriptorsPerTunnel` each (a TCP tunnel holds two, the local connection and the
 * proxy's; a UDP session one, its connection to the proxy, the local socket being shared).
 * Linux only; elsewhere, or when the limit is unlimited or unreadable, undefined (no cap). A cap
 * makes the tunnel beyond it a reported refusal: without one, running out of descriptors shows
 * as connections closed without a word (libuv accepts and closes them) or dials that fail.
 */
export function tunnelCapacity(descriptorsPerTunnel: number): { tunnels: number; limit: number } | undefined {
  if (process.platform !== 'linux') return undefined;
  try {
    const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    if (soft === undefined) return undefined;
    const limit = Number(soft);
    return { tunnels: Math.max(1, Math.floor((limit - readdirSync('/proc/self/fd').length - FD_SLACK) / descriptorsPerTunnel)), limit };
  } catch {
    return undefined;
  }
}
