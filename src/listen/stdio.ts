/**
 * Stdio as a listener of exactly one connection (ssh's ProxyCommand): stdin is what the local
 * side sends, stdout is where the tunnel's bytes go and nothing else ever is.
 */
import type { Readable, Writable } from 'node:stream';
import type { LocalConnection } from './connection.js';

export function stdioConnection(stdin: Readable, stdout: Writable): LocalConnection {
  return { input: stdin, output: stdout, peer: 'stdio' };
}
