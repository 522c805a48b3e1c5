/**
 * The project's own local stand-in for Pomerium, for tests, the demo and the benchmarks. This
 * file wires the parts and keeps the counters and records tests assert on:
 *
 * - policy.ts: routes and who is allowed through them
 * - tokens.ts: the signing key, minted and verified tokens, the Authorization header
 * - preamble.ts: what CONNECT and WebSocket upgrades share before a tunnel opens
 * - connect.ts, websocket.ts: the two kinds of tunnel
 * - http-route.ts: HTTPS routes, plain requests checked and forwarded (a Kubernetes API, say)
 * - http.ts, sign-in.ts: plain requests, among them the sign-in endpoints
 * - faults.ts: canned answers, delays and stalls; wire.ts: hand-written answers, the dial
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { fixture, readFixture } from '../fixtures.js';
import { handleConnect } from './connect.js';
import { handleConnectUdp, MASQUE_UDP_PREFIX } from './connect-udp.js';
import type { ProxyContext, ProxySettings } from './context.js';
import type { CannedResponse, FakeRequest } from './faults.js';
import { handleRequest } from './http.js';
import { type FakeRoute, RouteTable } from './policy.js';
import { signInUrl } from './sign-in.js';
import { createTokenIssuer, type MintTokenOptions, type TokenClaims } from './tokens.js';
import { createWebSocketTunnels } from './websocket.js';

export type { CannedResponse, FakeRequest } from './faults.js';
export type { FakeRoute } from './policy.js';
export type { MintTokenOptions, TokenClaims } from './tokens.js';

/** Bytes of request line and headers the proxy accepts, as Envoy's default 60 KiB allows, rounded up. */
export const MAX_REQUEST_HEAD = 64 * 1024;

/** Options of {@link startFakePomerium}; every one is optional. */
export interface FakePomeriumOptions {
  /** Loopback address to listen on; default `127.0.0.1`. The port is always a free one. */
  host?: string;
  /** Server certificate and key (PEM); default the fixtures proxy.pem / proxy-key.pem. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Mutual TLS: refuse clients without a certificate signed by the fixture client-ca.pem. */
  requireClientCert?: boolean;
  /** Extra `https.createServer` options applied last, e.g. `{ maxVersion: 'TLSv1.2' }`. */
  tlsOptions?: ServerOptions;
  routes?: FakeRoute[];
  /** Lifetime of tokens issued by the sign-in flow; default 3600. */
  tokenTtlSeconds?: number;
  /**
   * Claims added to every token the sign-in flow issues (the standard ones win on a clash), e.g.
   * `{ groups: [...] }` for the long tokens of users in many groups.
   */
  tokenClaims?: Record<string, unknown>;
  /**
   * `noExpiry` issues sign-in tokens without `exp`, as Pomerium does since v0.32.6.
   */
  noExpiry?: boolean;
  /**
   * `/.pomerium/api/v1/routes`, where clients check a token: `true` (default) answers it as
   * Pomerium does (200 with the routes for a valid token, 401 for an invalid one, 302 to the
   * sign-in page without one); `false` answers 404, as an older proxy without it.
   */
  routesApi?: boolean;
  /**
   * The `routes` list the routes API answers with, as given (any JSON values, for hostile names
   * and `connect_command`s); default one entry per route of the table (id, name, type, from).
   * {@link FakePomerium.setPortalRoutes} changes it on a running proxy.
   */
  portalRoutes?: unknown[];
  /** Email pre-filled in the sign-in form and used by `?submit=1` without `email`; default alice@corp.test. */
  signInEmail?: string;
  /** Answer to a CONNECT without a valid token: 302 (default, with Location), 401, 307… */
  unauthenticatedStatus?: number;
  /** The answer that opens a CONNECT-UDP tunnel: 200 as Envoy sends (default), or the RFC's 101. */
  udpAnswer?: 200 | 101;
  /** Bytes sent in the same write as the `200` head, as if the upstream spoke first. */
  greeting?: Buffer;
  /**
   * Raw bytes a CONNECT-UDP tunnel writes to the client right after its answer head, where
   * capsules go (for malformed capsule streams); the tunnel then relays as usual.
   */
  udpAfterAnswer?: (request: FakeRequest) => Buffer | undefined;
  /**
   * When it returns something, that answer replaces the normal handling of the request (CONNECT,
   * WebSocket upgrade or plain request).
   */
  respond?: (request: FakeRequest) => CannedResponse | undefined;
  /** Wait this long before handling each CONNECT (and each WebSocket upgrade). */
  onConnectDelayMs?: number;
  /** Wait this many more ms before handling this one CONNECT or upgrade (e.g. one destination's first). */
  delayRequest?: (request: FakeRequest) => number | undefined;
  /** Accept CONNECTs (and WebSocket upgrades) and never answer them (for client timeouts). */
  stallConnect?: boolean;
  /** How long to wait for the route's upstream before answering 503; default 5000. */
  upstreamConnectTimeoutMs?: number;
  /**
   * WebSocket tunnels answer the client's pings with pongs (default true). `false`: pings are
   * counted ({@link FakePomeriumStats.pingsReceived}) and never answered, like a peer that hung.
   */
  wsAutoPong?: boolean;
  /**
   * Close a WebSocket tunnel with 1001 when no frame at all (data, ping, pong) has arrived from
   * the client for this long, as a load balancer's idle timeout does. Default: never.
   */
  wsIdleTimeoutMs?: number;
}

/** Counters for assertions. */
export interface FakePomeriumStats {
  /** CONNECT requests received, answered or not. */
  connects: number;
  /** Answered CONNECTs by status; canned `raw` answers count as 0. */
  connectsByStatus: Record<number, number>;
  /** Tokens issued by the sign-in form. */
  signIns: number;
  /** Calls to /.pomerium/api/v1/login. */
  loginRequests: number;
  /** Visits of the sign-out page, GET /.pomerium/sign_out. */
  signOuts: number;
  /** Calls to /.pomerium/api/v1/routes, by the status answered. */
  routesRequests: Record<number, number>;
  /** Requests on HTTPS routes, by the status answered (the proxy's own or the upstream's). */
  httpRouteRequests: Record<number, number>;
  /** HTTP Upgrade requests received (WebSocket handshakes and CONNECT-UDP), answered or not. */
  upgrades: number;
  /** Answered upgrades by status (101 = a WebSocket tunnel opened); canned `raw` answers count as 0. */
  upgradesByStatus: Record<number, number>;
  /** WebSocket pings received from clients, over all tunnels. */
  pingsReceived: number;
  /** Completed TLS handshakes, and how many of them resumed an earlier session. */
  tlsHandshakes: number;
  tlsResumed: number;
}

/** One answered request. Tokens are never recorded. */
export interface FakePomeriumEvent {
  method: string;
  /** CONNECT authority, or path and query with any `pomerium_jwt` value hidden. */
  url: string;
  status: number;
  /** Whether an Authorization token was presented, valid or not. */
  hadToken: boolean;
  /** The email of a valid token. */
  email?: string;
}

/** The request head of one request (CONNECT, upgrade or plain), as {@link FakePomerium.requests} keeps it. */
export interface FakeRequestRecord {
  method: string;
  /** As in {@link FakePomeriumEvent.url}. */
  url: string;
  /** Header names in lower case; the Authorization value is replaced by `[hidden]`. */
  headers: IncomingHttpHeaders;
}

/** How a WebSocket tunnel ended, as {@link FakePomerium.wsClosures} records it. */
export interface FakeWsClosure {
  /** The route path. */
  path: string;
  /** Close code received from the client or sent by the proxy (1006: no close frame). */
  code: number;
  /** Who started the close: the client, the proxy (idle timeout, upstream end) or neither (abrupt). */
  by: 'client' | 'proxy' | 'abrupt';
}

/** A running fake proxy; see {@link startFakePomerium}. */
export interface FakePomerium {
  /** `https://localhost:PORT` (or `https://[::1]:PORT` etc. when `host` is not 127.0.0.1). */
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Path of the CA that signed the proxy certificate (fixtures ca.pem). */
  readonly caPath: string;
  readonly stats: FakePomeriumStats;
  readonly events: FakePomeriumEvent[];
  /** Tunnels answered 200 (CONNECT) or 101 (WebSocket) whose two ends are not both closed yet. */
  readonly openTunnels: number;
  /** Every request head received, in order (Authorization hidden), for checks of extra headers. */
  readonly requests: FakeRequestRecord[];
  /** One entry per WebSocket tunnel that has ended. */
  readonly wsClosures: FakeWsClosure[];
  readonly server: Server;
  /** A token signed by this proxy's key, as its sign-in flow would issue. */
  mintToken(options?: MintTokenOptions): string;
  /** The claims of `jwt` if this proxy signed it and it has not expired, else `null`. */
  verifyToken(jwt: string): TokenClaims | null;
  addRoute(route: FakeRoute): void;
  /** Replaces the list the routes API answers with ({@link FakePomeriumOptions.portalRoutes}); `undefined`: the route table's. */
  setPortalRoutes(routes: unknown[] | undefined): void;
  /**
   * Destroys every socket (open tunnels, WebSocket ones included), then closes the server;
   * bounded, idempotent.
   * With `reset`, client connections are torn down with a TCP RST, as a crashed proxy or a
   * middlebox dropping state would; otherwise they get a FIN.
   */
  close(options?: { reset?: boolean }): Promise<void>;
  /**
   * Goes down as {@link close} does (every socket destroyed, the port released) but can come
   * back: connections attempted meanwhile are refused. For restarts of the proxy.
   */
  stop(options?: { reset?: boolean }): Promise<void>;
  /**
   * Listens again on the same host and port after {@link stop}, as a restarted proxy would:
   * same routes and signing key (tokens stay valid), fresh TLS session-ticket keys.
   */
  start(): Promise<void>;
}

/**
 * Starts a local stand-in for Pomerium on a free port: a real `https.Server` with the fixture
 * certificates that answers CONNECT (and WebSocket upgrades on `wss://` routes) per route policy
 * and splices allowed tunnels to plain TCP, and serves the sign-in endpoints of docs/protocol.md
 * ("Sign-in"). Each instance has its own ES256 signing key, so tokens from one instance are
 * invalid at another.
 */
export async function startFakePomerium(options: FakePomeriumOptions = {}): Promise<FakePomerium> {
  const host = options.host ?? '127.0.0.1';
  const settings: ProxySettings = {
    ...options,
    tokenTtlSeconds: options.tokenTtlSeconds ?? 3600,
    signInEmail: options.signInEmail ?? 'alice@corp.test',
    unauthenticatedStatus: options.unauthenticatedStatus ?? 302,
    upstreamConnectTimeoutMs: options.upstreamConnectTimeoutMs ?? 5000,
  };
  const routes = new RouteTable();
  for (const route of options.routes ?? []) routes.add(route);

  const stats: FakePomeriumStats = {
    connects: 0,
    connectsByStatus: {},
    signIns: 0,
    loginRequests: 0,
    signOuts: 0,
    routesRequests: {},
    httpRouteRequests: {},
    upgrades: 0,
    upgradesByStatus: {},
    pingsReceived: 0,
    tlsHandshakes: 0,
    tlsResumed: 0,
  };
  const events: FakePomeriumEvent[] = [];
  const requests: FakeRequestRecord[] = [];
  const wsClosures: FakeWsClosure[] = [];
  const sockets = new Set<Socket>();
  let closing = new AbortController();
  let openTunnels = 0;

  const server = createServer({
    cert: options.cert ?? readFixture('proxy.pem'),
    key: options.key ?? readFixture('proxy-key.pem'),
    ALPNProtocols: ['http/1.1'],
    // Envoy in front of Pomerium takes request heads of up to 60 KiB (a token with many groups);
    // Node's default is 16 KiB.
    maxHeaderSize: MAX_REQUEST_HEAD,
    ...(options.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: readFixture('client-ca.pem') } : {}),
    ...options.tlsOptions,
  });
  // 'connection' sees the raw TCP socket (also those that never finish the handshake),
  // 'secureConnection' the TLS socket on top; close() destroys both kinds.
  server.on('connection', track);
  server.on('secureConnection', track);
  server.on('secureConnection', (socket: TLSSocket) => {
    stats.tlsHandshakes++;
    if (socket.isSessionReused()) stats.tlsResumed++;
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  // localhost is what the certificate and most tests expect; other addresses stay literal
  // (the certificate also covers 127.0.0.1 and ::1).
  const urlHost = host === '127.0.0.1' ? 'localhost' : host.includes(':') ? `[${host}]` : host;
  const url = `https://${urlHost}:${port}`;
  const tokens = createTokenIssuer(url, urlHost);

  const ctx: ProxyContext = {
    settings,
    url,
    urlHost,
    stats,
    wsClosures,
    routes,
    tokens,
    get closing() {
      return closing.signal;
    },
    record(method, target, status, token, claims) {
      const event: FakePomeriumEvent = { method, url: hideToken(target), status, hadToken: token !== undefined };
      if (claims) event.email = claims.email;
      events.push(event);
    },
    recordRequest(method, target, headers) {
      const copy: IncomingHttpHeaders = { ...headers };
      if (copy.authorization !== undefined) copy.authorization = '[hidden]';
      requests.push({ method, url: hideToken(target), headers: copy });
    },
    track,
    openTunnel() {
      openTunnels++;
      return () => void openTunnels--;
    },
    signInUrl: (redirect) => signInUrl(url, redirect),
  };
  const webSocketTunnels = createWebSocketTunnels(ctx);
  server.on('request', (req, res) => handleRequest(ctx, req, res));
  server.on('connect', (req, socket, head) => void handleConnect(ctx, req, socket as TLSSocket, head));
  server.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').startsWith(MASQUE_UDP_PREFIX) || req.headers.upgrade?.toLowerCase() === 'connect-udp') void handleConnectUdp(ctx, req, socket as TLSSocket, head);
    else void webSocketTunnels.handleUpgrade(req, socket as TLSSocket, head);
  });

  function track(socket: Socket): void {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  }

  /** Destroys every socket and closes the server; `final` also closes the WebSocket server for good. */
  function shutdown(closeOptions: { reset?: boolean }, final: boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      closing.abort();
      // server.close() only waits for sockets that are already gone after the loop below,
      // but a bound keeps a stuck socket from ever hanging a test run.
      const timer = setTimeout(resolve, 2000);
      timer.unref();
      if (server.listening) {
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      } else {
        clearTimeout(timer);
        resolve();
      }
      webSocketTunnels.terminateAll();
      if (final) webSocketTunnels.close();
      for (const socket of sockets) {
        if (closeOptions.reset && typeof socket.resetAndDestroy === 'function') {
          try {
            socket.resetAndDestroy();
            continue;
          } catch {
            // Not a TCP handle (the TLS layer on top): plain destroy below.
          }
        }
        socket.destroy();
      }
    });
  }

  let closed: Promise<void> | undefined;
  return {
    url,
    host,
    port,
    caPath: fixture('ca.pem'),
    stats,
    events,
    requests,
    wsClosures,
    get openTunnels() {
      return openTunnels;
    },
    server,
    mintToken: tokens.mintToken,
    verifyToken: tokens.verifyToken,
    addRoute: (route) => routes.add(route),
    setPortalRoutes(list) {
      settings.portalRoutes = list;
    },
    close(closeOptions = {}) {
      closed ??= shutdown(closeOptions, true);
      return closed;
    },
    async stop(stopOptions = {}) {
      if (closed) throw new Error('fake-pomerium: stop() after close()');
      await shutdown(stopOptions, false);
    },
    async start() {
      if (closed) throw new Error('fake-pomerium: start() after close()');
      if (server.listening) return;
      closing = new AbortController();
      // A restarted process has new ticket keys: resumed sessions from before are refused.
      server.setTicketKeys(randomBytes(48));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
  };
}

/** A path and query with any `pomerium_jwt` value replaced by `[hidden]`. */
function hideToken(target: string): string {
  return target.replace(/(pomerium_jwt=)[^&#]*/g, '$1[hidden]');
}
