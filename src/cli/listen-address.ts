/**
 * Parses `--listen`. Loopback unless a non-loopback host is spelled out:
 *   (absent)      127.0.0.1:0 (a free port, printed on start)
 *   :2202 / 2202  127.0.0.1:2202
 *   host:port     as given (a non-loopback host gets a warning: others could use your sign-in)
 *   -             stdin/stdout, for ssh's ProxyCommand
 */
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';
import { isLoopback } from '../target.js';
import { parsePort, splitHostPort } from './destination.js';

export type ListenAddress = { kind: 'stdio' } | { kind: 'tcp'; host: string; port: number; loopback: boolean };

export const DEFAULT_LISTEN = '127.0.0.1:0';
/** `burrow proxy`'s default: the port SOCKS clients assume. */
export const DEFAULT_PROXY_LISTEN = '127.0.0.1:1080';

export function parseListen(input: string): ListenAddress {
  const value = input.trim();
  if (value === '-') return { kind: 'stdio' };
  const fail = (reason: string) => new UsageError(text.invalidListen(input, reason), { code: 'BURROW_INVALID_LISTEN', hint: text.listenForms });
  if (value === '') throw fail('it is empty');
  const portOnly = value.startsWith(':') ? value.slice(1) : /^[0-9]+$/.test(value) ? value : undefined;
  if (portOnly !== undefined) {
    const port = parsePort(portOnly, 0);
    if (port === undefined) throw fail(`the port "${portOnly}" is not a number from 0 to 65535`);
    return { kind: 'tcp', host: '127.0.0.1', port, loopback: true };
  }
  // Port 0 (any free port) is valid here, unlike in a destination.
  const parts = splitHostPort(value, 0);
  if (typeof parts === 'string') throw fail(parts);
  return { kind: 'tcp', host: parts.host, port: parts.port, loopback: isLoopback(parts.host) };
}
