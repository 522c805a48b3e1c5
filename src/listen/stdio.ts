/**
 * Stdio as a listener of exactly one connection (ssh's ProxyCommand): stdin is what the local
 * side sends, stdout is where the tunnel's bytes go and nothing else ever is.
 */
import { Duplex } from 'node:stream';
import type { LocalConnection } from './tcp.js';

export function stdioConnection(stdin: NodeJS.ReadableStream = process.stdin, stdout: NodeJS.WritableStream = process.stdout): LocalConnection {
  return { stream: Duplex.from({ readable: stdin, writable: stdout }), peer: 'stdio' };
}
