/**
 * The transports burrow can open tunnels with, by name, and `auto`. Adding a transport is one
 * file implementing `Transport` (transport.ts) and one entry here; the `--transport` flag's
 * choices are read from this table.
 */
import { UsageError } from '../errors.js';
import type { RouteOptions } from '../net/route.js';
import { text } from '../output/messages.js';
import type { Target } from '../target.js';
import { ConnectTransport } from './connect.js';
import type { Transport } from './transport.js';
import { WebSocketTransport } from './websocket.js';

/** What a transport may be configured with: the shared route options and its own. */
export interface TransportOptions extends RouteOptions {
  /** WebSocket keepalive ping interval in ms; 0 = off. */
  pingIntervalMs: number;
}

interface TransportEntry {
  /** Whether this transport can carry `target` (a WebSocket needs a wss:// URL; CONNECT, an authority). */
  carries(target: Pick<Target, 'websocket'>): boolean;
  create(options: TransportOptions): Transport;
}

const TRANSPORTS = {
  connect: { carries: (target) => target.websocket === undefined, create: (options) => new ConnectTransport(options) },
  websocket: { carries: (target) => target.websocket !== undefined, create: (options) => new WebSocketTransport(options) },
} satisfies Record<string, TransportEntry>;

export type TransportName = keyof typeof TRANSPORTS;

/** `--transport` values: every transport, and `auto`. */
export const TRANSPORT_CHOICES = ['auto', ...(Object.keys(TRANSPORTS) as TransportName[])] as const;
export type TransportChoice = 'auto' | TransportName;

/**
 * The transport for `target`. `auto` is the first one that carries it (wss:// and ws://
 * upgrade, everything else CONNECTs); a named one must carry it. `input` is the destination
 * as the user wrote it, for the error.
 */
export function createTransport(choice: TransportChoice, target: Target, input: string, options: TransportOptions): Transport {
  return TRANSPORTS[resolveTransport(choice, target, input)].create(options);
}

/** The name of the transport `choice` means for `target`; a usage error when it cannot carry it. */
export function resolveTransport(choice: TransportChoice, target: Pick<Target, 'websocket'>, input: string): TransportName {
  const entries = Object.entries(TRANSPORTS) as Array<[TransportName, TransportEntry]>;
  const name = choice === 'auto' ? entries.find(([, entry]) => entry.carries(target))?.[0] : choice;
  if (name === undefined || !(TRANSPORTS[name] as TransportEntry).carries(target)) {
    throw new UsageError(text.transportMismatch(name ?? choice, input), { hint: text.transportMismatchHint });
  }
  return name;
}
