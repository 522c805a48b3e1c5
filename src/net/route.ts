/**
 * How every request to the identity-aware proxy travels, whatever it carries (a CONNECT
 * tunnel, a WebSocket upgrade, a sign-in or API call): the TLS trust, the corporate forward
 * proxy, the time allowed, who we say we are, the user's extra headers, and the token header.
 * Built once per command from its flags (cli/proxy-access.ts) and shared by all of them.
 */
import type { ForwardProxy } from './proxy-env.js';
import type { TlsSettings } from './tls.js';

export interface RouteOptions {
  /** Required for https proxies (and an https forward proxy). */
  tls: TlsSettings | undefined;
  /** The corporate forward proxy to go through, if any. */
  forward?: ForwardProxy | undefined;
  /** Budget for TCP + TLS + the proxy's answer, per request. */
  connectTimeoutMs: number;
  /** `burrow/<version>`. */
  userAgent: string;
  /** Extra request headers (`--header`), e.g. a gateway's own API key. Values may be secrets. */
  headers?: ReadonlyArray<readonly [string, string]> | undefined;
}

/** The header that presents a token to the proxy on a tunnel request (CONNECT or upgrade). */
export function tokenHeader(token: string | undefined): [string, string] | undefined {
  return token ? ['Authorization', `Pomerium ${token}`] : undefined;
}

/** Every header a tunnel request carries besides its own: user agent, `--header`s, the token. */
export function routeHeaders(route: RouteOptions, token: string | undefined): Array<[string, string]> {
  const headers: Array<[string, string]> = [['User-Agent', route.userAgent]];
  for (const [name, value] of route.headers ?? []) headers.push([name, value]);
  const auth = tokenHeader(token);
  if (auth) headers.push(auth);
  return headers;
}
