/**
 * Routes and who may use them: the route table (CONNECT routes by authority, WebSocket routes
 * by path, HTTPS routes by Host or path prefix) and the policy check every kind shares.
 */
import type { TokenClaims } from './tokens.js';

/** A Pomerium TCP route, spelled as in Pomerium's config. */
export interface FakeRoute {
  /**
   * `tcp+https://git.corp.test:22`: its `host:port` is what clients CONNECT to. Or a WebSocket
   * route, `wss://ws.corp.test/ssh` (or `ws://…`): an HTTP/1.1 Upgrade to WebSocket on that
   * path is spliced to `to`, binary messages carrying the stream. WebSocket routes are matched
   * by path only, whatever the request's Host says: clients reach this proxy as
   * `wss://localhost:PORT/ssh`, not under the route's name. Their host and port are ignored.
   * Or a UDP route, `udp+https://dns.corp.test:53` with `to: udp://127.0.0.1:PORT`, reached
   * by CONNECT-UDP (`GET /.well-known/masque/udp/{host}/{port}/`).
   * Or an HTTPS route, `https://k8s.corp.test` with `to: http://127.0.0.1:PORT`: plain requests
   * whose Host is the route's host (any port), or whose path starts with `prefix`, are checked
   * (http-route.ts) and forwarded to `to`.
   */
  from: string;
  /** `tcp://127.0.0.1:PORT`: where the tunnel is spliced to (`http://…` for an HTTPS route). */
  to: string;
  /**
   * HTTPS routes only: match requests by this path prefix (`/k8s/`), whatever their Host says
   * (clients on loopback reach the proxy as `localhost:PORT`, not under the route's name), and
   * strip it before forwarding, as Pomerium's `prefix` with `prefix_rewrite: /` does.
   */
  prefix?: string;
  /**
   * HTTPS routes only: as Pomerium's `kubernetes_service_account_token`, forward with
   * `Authorization: Bearer <this>` and `Impersonate-User: <email>` (and `Impersonate-Group` per group).
   */
  kubernetesServiceAccountToken?: string;
  /** Emails allowed through; `undefined` means any signed-in user. */
  allow?: string[];
  /** Emails refused even when `allow` would let them in. */
  deny?: string[];
  /** No token needed at all. */
  allowPublicUnauthenticatedAccess?: boolean;
}

/** A route with its upstream taken apart. */
export interface ParsedRoute extends FakeRoute {
  toHost: string;
  toPort: number;
}

/** A refusal: the status and headers of the answer. */
export interface Refusal {
  status: number;
  headers: Record<string, string>;
}

/** The routes of one proxy; {@link add} replaces a route with the same authority or path. */
export class RouteTable {
  /** CONNECT routes by lower-case `host:port`. */
  readonly #tcp = new Map<string, ParsedRoute>();
  /** CONNECT-UDP routes by lower-case `host:port` (IPv6 literals in brackets). */
  readonly #udp = new Map<string, ParsedRoute>();
  /** WebSocket routes by path. */
  readonly #ws = new Map<string, ParsedRoute>();
  /** HTTPS routes by lower-case host name (no port), and those matched by path prefix. */
  readonly #http = new Map<string, ParsedRoute>();
  readonly #prefixed = new Map<string, ParsedRoute>();

  add(route: FakeRoute): void {
    const from = new URL(route.from);
    const to = new URL(route.to);
    if (from.protocol === 'wss:' || from.protocol === 'ws:') {
      if (!to.port) throw new Error(`fake-pomerium: routes need explicit ports: ${route.from} -> ${route.to}`);
      this.#ws.set(from.pathname, { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) });
      return;
    }
    if (from.protocol === 'https:') {
      if (to.protocol !== 'http:' || !to.port) throw new Error(`fake-pomerium: HTTPS routes need an http:// target with a port: ${route.from} -> ${route.to}`);
      const parsed = { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) };
      if (route.prefix !== undefined) {
        if (!route.prefix.startsWith('/')) throw new Error(`fake-pomerium: a route prefix starts with /: ${route.prefix}`);
        this.#prefixed.set(route.prefix, parsed);
      } else {
        this.#http.set(from.hostname.toLowerCase(), parsed);
      }
      return;
    }
    if (from.protocol === 'udp+https:') {
      if (!from.port || !to.port || to.protocol !== 'udp:') throw new Error(`fake-pomerium: UDP routes need ports and a udp:// target: ${route.from} -> ${route.to}`);
      this.#udp.set(from.host.toLowerCase(), { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) });
      return;
    }
    if (!from.port || !to.port) throw new Error(`fake-pomerium: routes need explicit ports: ${route.from} -> ${route.to}`);
    this.#tcp.set(from.host.toLowerCase(), { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) });
  }

  /** The CONNECT route for a lower-case `host:port`. */
  tcp(authority: string): ParsedRoute | undefined {
    return this.#tcp.get(authority);
  }

  /** The CONNECT-UDP route for a lower-case `host:port`. */
  udp(authority: string): ParsedRoute | undefined {
    return this.#udp.get(authority);
  }

  /** Every route, CONNECT ones first. */
  list(): ParsedRoute[] {
    return [...this.#tcp.values(), ...this.#ws.values(), ...this.#udp.values(), ...this.#http.values(), ...this.#prefixed.values()];
  }

  /**
   * The HTTPS route for a plain request: the longest prefix `path` starts with, else the one
   * for the Host header's name (its port, if any, ignored).
   */
  http(hostHeader: string | undefined, path: string): ParsedRoute | undefined {
    let best: ParsedRoute | undefined;
    for (const [prefix, route] of this.#prefixed) {
      if ((path === prefix.replace(/\/$/, '') || path.startsWith(prefix)) && prefix.length > (best?.prefix?.length ?? -1)) best = route;
    }
    if (best) return best;
    const name = (hostHeader ?? '').toLowerCase().replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    return this.#http.get(name);
  }

  /** The WebSocket route for a request path. */
  ws(path: string): ParsedRoute | undefined {
    return this.#ws.get(path);
  }
}

/**
 * The route's policy, shared by CONNECT and WebSocket upgrades: undefined to let the tunnel
 * through, else the refusal (without a valid token `unauthenticatedStatus`, with a Location
 * from `signInLocation` when that status is a redirect; a user the route does not allow 403).
 */
export function policy(route: FakeRoute, claims: TokenClaims | null, unauthenticatedStatus: number, signInLocation: () => string): Refusal | undefined {
  if (route.allowPublicUnauthenticatedAccess) return undefined;
  if (!claims) {
    const redirect = unauthenticatedStatus >= 300 && unauthenticatedStatus < 400;
    return { status: unauthenticatedStatus, headers: redirect ? { Location: signInLocation() } : {} };
  }
  if (route.deny?.includes(claims.email) || (route.allow && !route.allow.includes(claims.email))) return { status: 403, headers: {} };
  return undefined;
}
