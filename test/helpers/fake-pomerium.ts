import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server, type ServerOptions } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import { fixture, readFixture } from './fixtures.js';

/** A Pomerium TCP route, spelled as in Pomerium's config. */
export interface FakeRoute {
  /**
   * `tcp+https://git.corp.test:22`: its `host:port` is what clients CONNECT to. Or a WebSocket
   * route, `wss://ws.corp.test/ssh` (or `ws://…`): an HTTP/1.1 Upgrade to WebSocket on that
   * path is spliced to `to`, binary messages carrying the stream. WebSocket routes are matched
   * by path only, whatever the request's Host says: clients reach this proxy as
   * `wss://localhost:PORT/ssh`, not under the route's name. Their host and port are ignored.
   */
  from: string;
  /** `tcp://127.0.0.1:PORT`: where the tunnel is spliced to. */
  to: string;
  /** Emails allowed through; `undefined` means any signed-in user. */
  allow?: string[];
  /** Emails refused even when `allow` would let them in. */
  deny?: string[];
  /** No token needed at all. */
  allowPublicUnauthenticatedAccess?: boolean;
}

/** The parts of a request that the {@link FakePomeriumOptions.respond} hook sees. */
export interface FakeRequest {
  method: string;
  /** The authority (`host:port`) for CONNECT, else path and query. */
  url: string;
  headers: IncomingHttpHeaders;
  /** Set for an HTTP Upgrade request (method `GET`), e.g. a WebSocket handshake. */
  upgrade?: true;
}

/**
 * What the {@link FakePomeriumOptions.respond} hook may answer: a well-formed HTTP response,
 * or raw bytes written to the TLS stream before it is ended (for malformed answers).
 */
export type CannedResponse =
  | { status: number; headers?: Record<string, string>; body?: string }
  | { raw: Buffer | string };

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
  /** Email pre-filled in the sign-in form and used by `?submit=1` without `email`; default alice@corp.test. */
  signInEmail?: string;
  /** Answer to a CONNECT without a valid token: 302 (default, with Location), 401, 307… */
  unauthenticatedStatus?: number;
  /** Bytes sent in the same write as the `200` head, as if the upstream spoke first. */
  greeting?: Buffer;
  /**
   * When it returns something, that answer replaces the normal handling of the request (CONNECT,
   * WebSocket upgrade or plain request).
   */
  respond?: (request: FakeRequest) => CannedResponse | undefined;
  /** Wait this long before handling each CONNECT (and each WebSocket upgrade). */
  onConnectDelayMs?: number;
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

/** Claims of the tokens this proxy issues. */
export interface TokenClaims {
  iss: string;
  aud: string;
  sub: string;
  email: string;
  iat: number;
  exp: number;
  [claim: string]: unknown;
}

/** Options of {@link FakePomerium.mintToken}. */
export interface MintTokenOptions {
  email?: string;
  /** Default: the email. */
  sub?: string;
  /** Default 3600; zero or negative gives an already expired token. */
  ttlSeconds?: number;
  /** Added to the standard claims (which win on a clash). */
  extraClaims?: Record<string, unknown>;
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
  /** HTTP Upgrade requests received (WebSocket handshakes), answered or not. */
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
  const tokenTtlSeconds = options.tokenTtlSeconds ?? 3600;
  const signInEmail = options.signInEmail ?? 'alice@corp.test';
  const unauthenticatedStatus = options.unauthenticatedStatus ?? 302;
  const upstreamConnectTimeoutMs = options.upstreamConnectTimeoutMs ?? 5000;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const routes = new Map<string, ParsedRoute>();
  /** WebSocket routes by path. */
  const wsRoutes = new Map<string, ParsedRoute>();
  for (const route of options.routes ?? []) addRoute(route);

  const stats: FakePomeriumStats = {
    connects: 0,
    connectsByStatus: {},
    signIns: 0,
    loginRequests: 0,
    upgrades: 0,
    upgradesByStatus: {},
    pingsReceived: 0,
    tlsHandshakes: 0,
    tlsResumed: 0,
  };
  const events: FakePomeriumEvent[] = [];
  const requests: FakeRequestRecord[] = [];
  const wsClosures: FakeWsClosure[] = [];
  const webSockets = new Set<WebSocket>();
  // noServer: upgrades are answered (or refused) by handleUpgrade below, which hands only the
  // accepted ones to ws. No compression: Pomerium tunnels carry opaque bytes.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, autoPong: options.wsAutoPong ?? true });
  const sockets = new Set<Socket>();
  let closing = new AbortController();
  let openTunnels = 0;

  const server = createServer({
    cert: options.cert ?? readFixture('proxy.pem'),
    key: options.key ?? readFixture('proxy-key.pem'),
    ALPNProtocols: ['http/1.1'],
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
  server.on('request', (req, res) => handleRequest(req, res));
  server.on('connect', (req, socket, head) => void handleConnect(req, socket as TLSSocket, head));
  server.on('upgrade', (req, socket, head) => void handleUpgrade(req, socket as TLSSocket, head));

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

  function track(socket: Socket): void {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  }

  function addRoute(route: FakeRoute): void {
    const from = new URL(route.from);
    const to = new URL(route.to);
    if (from.protocol === 'wss:' || from.protocol === 'ws:') {
      if (!to.port) throw new Error(`fake-pomerium: routes need explicit ports: ${route.from} -> ${route.to}`);
      wsRoutes.set(from.pathname, { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) });
      return;
    }
    if (!from.port || !to.port) throw new Error(`fake-pomerium: routes need explicit ports: ${route.from} -> ${route.to}`);
    routes.set(from.host.toLowerCase(), { ...route, toHost: to.hostname.replace(/^\[(.*)\]$/, '$1'), toPort: Number(to.port) });
  }

  function mintToken(mint: MintTokenOptions = {}): string {
    const email = mint.email ?? 'alice@corp.test';
    const iat = Math.floor(Date.now() / 1000);
    const claims: TokenClaims = {
      ...mint.extraClaims,
      iss: url,
      aud: urlHost,
      sub: mint.sub ?? email,
      email,
      iat,
      exp: iat + (mint.ttlSeconds ?? 3600),
    };
    return signJwt(claims, privateKey);
  }

  function verifyToken(jwt: string): TokenClaims | null {
    const claims = verifyJwt(jwt, publicKey);
    return claims && claims.iss === url ? claims : null;
  }

  function record(method: string, target: string, status: number, token: string | undefined, claims: TokenClaims | null): void {
    const event: FakePomeriumEvent = { method, url: target.replace(/(pomerium_jwt=)[^&#]*/g, '$1[hidden]'), status, hadToken: token !== undefined };
    if (claims) event.email = claims.email;
    events.push(event);
  }

  function recordRequest(method: string, target: string, headers: IncomingHttpHeaders): void {
    const copy: IncomingHttpHeaders = { ...headers };
    if (copy.authorization !== undefined) copy.authorization = '[hidden]';
    requests.push({ method, url: target.replace(/(pomerium_jwt=)[^&#]*/g, '$1[hidden]'), headers: copy });
  }

  async function handleConnect(req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
    stats.connects++;
    // The http server removed its own listeners when it handed the socket over.
    socket.on('error', () => socket.destroy());
    // Pomerium tunnels are raw TCP, so they must carry half-closes: keep writing after the
    // client's FIN. The http server's TLS sockets do not allow that by default.
    socket.allowHalfOpen = true;
    const authority = (req.url ?? '').toLowerCase();
    recordRequest('CONNECT', authority, req.headers);
    const token = tokenFrom(req.headers);
    const claims = token === undefined ? null : verifyToken(token);
    const reply = (status: number, headers?: Record<string, string>, body?: string): void => {
      stats.connectsByStatus[status] = (stats.connectsByStatus[status] ?? 0) + 1;
      record('CONNECT', authority, status, token, claims);
      writeConnectAnswer(socket, status, headers, body);
    };

    if (options.onConnectDelayMs) {
      try {
        await delay(options.onConnectDelayMs, undefined, { signal: closing.signal });
      } catch {
        return; // close() was called while we waited
      }
    }
    if (options.stallConnect) return; // the socket stays open until the client or close() ends it

    const canned = options.respond?.({ method: 'CONNECT', url: req.url ?? '', headers: req.headers });
    if (canned) {
      if ('raw' in canned) {
        stats.connectsByStatus[0] = (stats.connectsByStatus[0] ?? 0) + 1;
        record('CONNECT', authority, 0, token, claims);
        endSoon(socket, canned.raw);
      } else {
        reply(canned.status, canned.headers, canned.body);
      }
      return;
    }

    const upstream = await admit(routes.get(authority), claims, `https://${authority}/`, socket, reply);
    if (!upstream) return;
    stats.connectsByStatus[200] = (stats.connectsByStatus[200] ?? 0) + 1;
    record('CONNECT', authority, 200, token, claims);
    const answer = Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n');
    socket.write(options.greeting ? Buffer.concat([answer, options.greeting]) : answer);
    if (head.length > 0) upstream.write(head);
    openTunnels++;
    splice(socket, upstream, () => openTunnels--);
  }

  /**
   * An HTTP/1.1 Upgrade: the same checks as CONNECT, in the same order (canned answer, route,
   * sign-in, policy, upstream), then the WebSocket handshake and a splice of binary messages to
   * the route's upstream.
   */
  async function handleUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
    stats.upgrades++;
    socket.on('error', () => socket.destroy());
    const target = req.url ?? '/';
    recordRequest('GET', target, req.headers);
    const token = tokenFrom(req.headers);
    const claims = token === undefined ? null : verifyToken(token);
    const count = (status: number): void => {
      stats.upgradesByStatus[status] = (stats.upgradesByStatus[status] ?? 0) + 1;
      record(req.method ?? 'GET', target, status, token, claims);
    };
    const reply = (status: number, headers?: Record<string, string>, body?: string): void => {
      count(status);
      writeConnectAnswer(socket, status, headers, body);
    };

    if (options.onConnectDelayMs) {
      try {
        await delay(options.onConnectDelayMs, undefined, { signal: closing.signal });
      } catch {
        return; // close() was called while we waited
      }
    }
    if (options.stallConnect) return;

    const canned = options.respond?.({ method: req.method ?? 'GET', url: target, headers: req.headers, upgrade: true });
    if (canned) {
      if ('raw' in canned) {
        count(0);
        endSoon(socket, canned.raw);
      } else {
        reply(canned.status, canned.headers, canned.body);
      }
      return;
    }

    let path: string;
    try {
      path = new URL(target, url).pathname;
    } catch {
      return reply(400);
    }
    // Checked before anything is dialled, so that ws's own handshake cannot fail afterwards.
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') return reply(400, {}, 'only WebSocket upgrades are served\n');
    if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers['sec-websocket-key'] ?? '') || !['8', '13'].includes(req.headers['sec-websocket-version'] ?? '')) {
      return reply(400, {}, 'bad WebSocket handshake\n');
    }
    const upstream = await admit(wsRoutes.get(path), claims, `https://${req.headers.host ?? urlHost}${path}`, socket, reply);
    if (!upstream) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      count(101);
      openTunnels++;
      spliceWebSocket(ws, upstream, path, () => openTunnels--);
    });
  }

  /**
   * Joins an accepted WebSocket and the upstream TCP socket. Messages (binary or not) go to the
   * upstream as bytes; upstream bytes go out as binary messages. Backpressure both ways: the
   * WebSocket is paused while the upstream's write buffer is full, the upstream is paused while
   * `bufferedAmount` is high. Upstream EOF -> close 1000 (after the queued messages); the
   * WebSocket closing -> upstream.end(); an error on either side destroys both.
   */
  function spliceWebSocket(ws: WebSocket, upstream: Socket, path: string, onClosed: () => void): void {
    const HIGH = 1024 * 1024;
    const LOW = 256 * 1024;
    webSockets.add(ws);
    upstream.setNoDelay(true);
    let closedBy: FakeWsClosure['by'] | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) onClosed();
    };

    let idle: NodeJS.Timeout | undefined;
    if (options.wsIdleTimeoutMs) {
      const ms = options.wsIdleTimeoutMs;
      idle = setTimeout(() => {
        closedBy ??= 'proxy';
        ws.close(1001, 'idle timeout');
      }, ms);
      idle.unref();
    }
    const seen = (): void => void idle?.refresh();

    let wsPaused = false;
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      seen();
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      // Messages already parsed still arrive after pause(); they are few and simply queued.
      if (upstream.writable && !upstream.write(chunk) && !wsPaused) {
        wsPaused = true;
        ws.pause();
        upstream.once('drain', () => {
          wsPaused = false;
          ws.resume();
        });
      }
    });
    ws.on('ping', () => {
      seen();
      stats.pingsReceived++;
    });
    ws.on('pong', seen);
    ws.on('error', () => {
      ws.terminate();
      upstream.destroy();
    });
    ws.once('close', (code: number) => {
      clearTimeout(idle);
      webSockets.delete(ws);
      wsClosures.push({ path, code, by: closedBy ?? (code === 1006 ? 'abrupt' : 'client') });
      // Nothing can reach the client any more: finish writing to the upstream, discard what it
      // still sends, and do not wait for it forever.
      upstream.end();
      upstream.resume();
      upstream.setTimeout(5000, () => upstream.destroy());
      closed();
    });

    // Each send's callback runs once its frame went to the socket, so one of them sees the
    // buffer fall below LOW after a pause.
    let upstreamPaused = false;
    upstream.on('data', (chunk: Buffer) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(chunk, { binary: true }, () => {
        if (upstreamPaused && ws.bufferedAmount < LOW) {
          upstreamPaused = false;
          upstream.resume();
        }
      });
      if (!upstreamPaused && ws.bufferedAmount > HIGH) {
        upstreamPaused = true;
        upstream.pause();
      }
    });
    upstream.once('end', () => {
      closedBy ??= 'proxy';
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'upstream closed');
    });
    upstream.on('error', () => {
      upstream.destroy();
      ws.terminate();
    });
    upstream.once('close', closed);
  }

  function handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const target = req.url ?? '/';
    recordRequest(method, target, req.headers);
    const token = tokenFrom(req.headers);
    const claims = token === undefined ? null : verifyToken(token);
    const send = (status: number, body: string, headers: Record<string, string> = {}): void => {
      record(method, target, status, token, claims);
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers, 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };

    const canned = options.respond?.({ method, url: target, headers: req.headers });
    if (canned) {
      if ('raw' in canned) {
        record(method, target, 0, token, claims);
        endSoon(req.socket, canned.raw);
      } else {
        send(canned.status, canned.body ?? '', canned.headers);
      }
      return;
    }

    let requestUrl: URL;
    try {
      requestUrl = new URL(target, url);
    } catch {
      return send(400, 'bad request target\n'); // a throw here would crash the whole test run
    }
    const query = requestUrl.searchParams;
    switch (`${method} ${requestUrl.pathname}`) {
      case 'GET /healthz':
        return send(200, 'ok');
      case 'GET /.pomerium/api/v1/whoami':
        return claims ? send(200, JSON.stringify(claims), { 'Content-Type': 'application/json' }) : send(401, 'not signed in\n');
      case 'GET /.pomerium/api/v1/login': {
        stats.loginRequests++;
        const redirect = query.get('pomerium_redirect_uri');
        if (!isHttpUrl(redirect)) return send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
        return send(200, signInUrl(redirect));
      }
      case 'GET /.pomerium/sign_in': {
        const redirect = query.get('pomerium_redirect_uri');
        if (!isHttpUrl(redirect)) return send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
        if (query.get('submit') === '1') return completeSignIn(redirect, query.get('email'));
        return send(200, signInPage(redirect, signInEmail), { 'Content-Type': 'text/html; charset=utf-8' });
      }
      case 'POST /.pomerium/sign_in': {
        readBody(req, 64 * 1024)
          .then((body) => {
            const form = new URLSearchParams(body);
            const redirect = form.get('pomerium_redirect_uri');
            if (!isHttpUrl(redirect)) return send(400, 'pomerium_redirect_uri must be an http(s) URL\n');
            completeSignIn(redirect, form.get('email'));
          })
          .catch(() => req.socket.destroy());
        return;
      }
      default:
        return send(404, 'not found\n');
    }

    // What the identity provider and Pomerium's callback do together: issue a token and send
    // the browser back to the client's loopback URL with `pomerium_jwt` added to its query.
    function completeSignIn(redirect: string, email: string | null): void {
      const jwt = mintToken({ email: email || signInEmail, ttlSeconds: tokenTtlSeconds });
      stats.signIns++;
      const back = new URL(redirect);
      // Appended by hand: rebuilding through URLSearchParams would re-encode the client's own
      // parameters, and docs/protocol.md ("Sign-in") promises they come back as they were.
      back.search = `${back.search ? `${back.search}&` : '?'}pomerium_jwt=${jwt}`;
      send(302, 'signed in\n', { Location: back.href });
    }
  }

  /**
   * The route's policy, shared by CONNECT and WebSocket upgrades: undefined to let the tunnel
   * through, else the refusal (sign-in redirect, or 403).
   */
  function policy(route: FakeRoute, claims: TokenClaims | null, signInTarget: string): { status: number; headers: Record<string, string> } | undefined {
    if (route.allowPublicUnauthenticatedAccess) return undefined;
    if (!claims) {
      const redirect = unauthenticatedStatus >= 300 && unauthenticatedStatus < 400;
      return { status: unauthenticatedStatus, headers: redirect ? { Location: signInUrl(signInTarget) } : {} };
    }
    if (route.deny?.includes(claims.email) || (route.allow && !route.allow.includes(claims.email))) return { status: 403, headers: {} };
    return undefined;
  }

  /**
   * Route lookup, policy and the upstream dial, shared by CONNECT and WebSocket upgrades: the
   * connected upstream, or undefined once `reply` has answered 404/302/401/403/503 (or the client
   * gave up while we were dialling).
   */
  async function admit(
    route: ParsedRoute | undefined,
    claims: TokenClaims | null,
    signInTarget: string,
    socket: Socket,
    reply: (status: number, headers?: Record<string, string>) => void,
  ): Promise<Socket | undefined> {
    if (!route) return void reply(404);
    const refusal = policy(route, claims, signInTarget);
    if (refusal) return void reply(refusal.status, refusal.headers);
    let upstream: Socket;
    try {
      upstream = await dial(route.toHost, route.toPort, upstreamConnectTimeoutMs, track);
    } catch {
      return void reply(503);
    }
    if (socket.destroyed || closing.signal.aborted) {
      upstream.destroy();
      return undefined;
    }
    return upstream;
  }

  function signInUrl(redirect: string): string {
    return `${url}/.pomerium/sign_in?pomerium_redirect_uri=${encodeURIComponent(redirect)}`;
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
      for (const ws of webSockets) ws.terminate();
      if (final) wss.close();
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
    mintToken,
    verifyToken,
    addRoute,
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

interface ParsedRoute extends FakeRoute {
  toHost: string;
  toPort: number;
}

/** The token of `Authorization: Pomerium <jwt>` or `Authorization: Bearer Pomerium-<jwt>`. */
function tokenFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization ?? '';
  return (/^Pomerium\s+(\S+)$/.exec(value) ?? /^Bearer\s+Pomerium-(\S+)$/.exec(value))?.[1];
}

/**
 * Writes a complete HTTP/1.1 answer to a CONNECT that is not let through, then ends the
 * connection as Pomerium does.
 */
function writeConnectAnswer(socket: Socket, status: number, headers: Record<string, string> = {}, body?: string): void {
  const text = body ?? `${status} ${STATUS_CODES[status] ?? 'Unknown'}\n`;
  const all: Record<string, string> = { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', ...headers };
  all['Content-Length'] = String(Buffer.byteLength(text));
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`, ...Object.entries(all).map(([k, v]) => `${k}: ${v}`)];
  endSoon(socket, `${lines.join('\r\n')}\r\n\r\n${text}`);
}

/**
 * Sends `data` and a FIN, then closes the socket shortly after. Destroying right away could
 * turn into a TCP reset if the client's own bytes are still unread, and a reset can make the
 * client lose the answer we just sent; so we drain its input and give it a moment to close.
 */
function endSoon(socket: Socket, data: Buffer | string): void {
  socket.end(data);
  socket.resume();
  socket.setTimeout(1000, () => socket.destroy());
}

/** Opens a half-open-capable TCP connection to the upstream, or rejects after `timeoutMs`. */
function dial(host: string, port: number, timeoutMs: number, track: (socket: Socket) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const upstream = netConnect({ host, port, allowHalfOpen: true });
    track(upstream);
    upstream.setTimeout(timeoutMs, () => upstream.destroy(new Error(`connect to ${host}:${port} timed out`)));
    upstream.once('error', reject);
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.off('error', reject);
      resolve(upstream);
    });
  });
}

/**
 * Joins the client's TLS stream and the upstream TCP socket. `pipe` (not `stream.pipeline`)
 * because it ends the destination when the source ends and does nothing else, which is exactly
 * a half-close: client FIN -> upstream.end(), upstream FIN -> client.end(), each direction
 * finishing on its own. An error on either side tears down both.
 */
function splice(client: Socket, upstream: Socket, onClosed: () => void): void {
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  const teardown = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', teardown);
  upstream.on('error', teardown);
  let open = 2;
  const closed = (): void => {
    if (--open === 0) onClosed();
  };
  client.once('close', closed);
  upstream.once('close', closed);
  client.pipe(upstream);
  upstream.pipe(client);
}

function signJwt(claims: TokenClaims, privateKey: KeyObject): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const input = `${header}.${payload}`;
  // JWS wants the raw r||s signature (IEEE P1363), not the DER that node produces by default.
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function verifyJwt(jwt: string, publicKey: KeyObject): TokenClaims | null {
  const [header, payload, signature, ...extra] = jwt.split('.');
  if (header === undefined || payload === undefined || signature === undefined || extra.length > 0) return null;
  try {
    if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'ES256') return null;
    const valid = verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
    if (!valid) return null;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as TokenClaims;
    return typeof claims.exp === 'number' && Date.now() / 1000 < claims.exp ? claims : null;
  } catch {
    return null; // not base64url or not JSON: simply not a token of ours
  }
}

function isHttpUrl(value: string | null): value is string {
  if (!value) return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return reject(new Error('request body too large'));
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function signInPage(redirect: string, email: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Sign in</title></head>
<body>
<h1>Sign in</h1>
<form method="POST" action="/.pomerium/sign_in">
<input type="hidden" name="pomerium_redirect_uri" value="${escapeHtml(redirect)}">
<label>Email <input type="email" name="email" id="email" value="${escapeHtml(email)}"></label>
<button type="submit" id="sign-in">Sign in</button>
</form>
</body>
</html>
`;
}
