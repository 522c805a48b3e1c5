/**
 * The nouns every layer shares: where a tunnel ends (an authority), the identity-aware proxy
 * that carries it (an endpoint), and the two together (a target). A leaf module: it imports
 * nothing of burrow's, so net/, auth/, store/, tunnel/ and listen/ can all use it without
 * reaching up into cli/, where the parsers that build these live (cli/destination.ts).
 */
import { isIP } from 'node:net';

/** Where the tunnel ends: the `host:port` the proxy is asked to CONNECT to. */
export interface Authority {
  host: string;
  port: number;
  /**
   * `host:port`, with IPv6 literals in brackets: the CONNECT request target. For a WebSocket
   * destination, the URL itself (it only names the destination in messages).
   */
  authority: string;
}

/** A server burrow dials: the identity-aware proxy, or a corporate forward proxy in front of it. */
export interface Endpoint {
  /** `https` normally; `http` only when spelled out (tokens then travel in clear text). */
  scheme: 'https' | 'http';
  host: string;
  port: number;
}

/** The identity-aware proxy to talk to. */
export interface ProxyEndpoint extends Endpoint {
  /** `scheme://host:port`, used in messages and as the credential cache key. */
  origin: string;
}

export interface Target {
  destination: Authority;
  proxy: ProxyEndpoint;
  /** Set for `wss://` / `ws://` destinations: the URL to upgrade (the proxy is its host). */
  websocket?: { url: string } | undefined;
}

/** `host:port`, with an IPv6 literal in brackets. */
export function formatAuthority(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** An endpoint and its origin; the port defaults to the scheme's. */
export function proxyEndpoint(scheme: 'https' | 'http', host: string, port?: number): ProxyEndpoint {
  const p = port ?? (scheme === 'https' ? 443 : 80);
  return { scheme, host, port: p, origin: `${scheme}://${formatAuthority(host, p)}` };
}

/** True for 127.0.0.0/8, ::1 and "localhost": addresses that never leave this machine. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}
