/**
 * The WebSocket transport (docs/protocol.md "WebSocket transport"): an HTTP/1.1 Upgrade to the
 * destination URL carrying the same Authorization header as CONNECT; after 101 every binary
 * message carries stream bytes. This is what websockify speaks, and what load balancers and
 * gateways that refuse CONNECT still pass.
 *
 * - The socket comes from the same dialler as CONNECT (ws's `createConnection`), so TLS flags
 *   (and forward proxies) apply alike.
 * - Answers other than 101 go through the same status mapping as CONNECT (302/401 → sign in).
 * - Keepalive: a ping every interval; when pongs stop for three intervals the tunnel is closed
 *   with a clear reason, rather than hanging on a dead path.
 * - `createWebSocketStream` gives a Duplex with backpressure (it pauses the socket when the
 *   reader stalls). WebSocket has no half-close: ending our side sends a close frame, and the
 *   server may still send until it answers with its own.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tokenInfo } from '../auth/jwt.js';
import { BurrowError, ProxyProtocolError } from '../errors.js';
import { importExternal } from '../external.js';
import { classifyNetworkError, dialProxy, dialSubject, timeoutError } from '../net/dial.js';
import { printable } from '../net/http-answer.js';
import { type RouteOptions, routeHeaders } from '../net/route.js';
import { text } from '../output/messages.js';
import { statusToError } from './status.js';
import { explainSocketError, type OpenRequest, type Transport, type Tunnel } from './transport.js';

export interface WebSocketTransportOptions extends RouteOptions {
  /** Ping interval in ms; 0 disables pings. */
  pingIntervalMs: number;
}

/** Pongs missing for this many intervals close the tunnel. */
const MISSED_PONGS = 3;

/** An error on the WebSocket stream that ends the tunnel: the session reports its message. */
class KeepaliveError extends Error {
  override readonly name = 'KeepaliveError';
}

export class WebSocketTransport implements Transport {
  readonly name = 'websocket';
  readonly framesInJavaScript = true;
  readonly #options: WebSocketTransportOptions;

  constructor(options: WebSocketTransportOptions) {
    this.#options = options;
  }

  async open(request: OpenRequest): Promise<Tunnel> {
    const { target, token, signal } = request;
    if (!target.websocket) throw new Error('WebSocketTransport: the target has no WebSocket URL');
    const { WebSocket, createWebSocketStream } = await importExternal<typeof import('ws')>('ws');
    const options = this.#options;
    const deadline = Date.now() + options.connectTimeoutMs;
    const label = target.destination.authority;
    const subject = dialSubject(target.proxy, label);
    let wire: Socket | undefined;

    const ws = new WebSocket(target.websocket.url, {
      headers: Object.fromEntries(routeHeaders(options, token)),
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: options.connectTimeoutMs,
      maxPayload: 64 * 1024 * 1024,
      createConnection: ((_opts: unknown, callback: (error: Error | null, socket?: Duplex) => void) => {
        dialProxy({ endpoint: target.proxy, alpn: ['http/1.1'], label, tls: options.tls, forward: options.forward, deadline, signal }).then(
          (socket) => {
            wire = socket;
            callback(null, socket);
          },
          (error: Error) => callback(error),
        );
        return undefined;
      }) as never,
    });

    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        cleanup();
        // terminate() while CONNECTING emits 'error'; nobody else listens any more.
        ws.on('error', () => {});
        ws.terminate();
        reject(error);
      };
      const onOpen = () => {
        cleanup();
        resolve();
      };
      const onResponse = (_req: unknown, res: IncomingMessage) => {
        res.resume();
        const headersOut: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headersOut[k] = v;
        const answer = { status: res.statusCode ?? 0, reason: res.statusMessage ?? '', headers: headersOut };
        const mapped = statusToError(answer, { proxy: target.proxy.origin, dest: label }, {
          user: token ? tokenInfo(token).user : undefined,
          unexpectedHint: () => text.notWebSocketHint,
        });
        fail(
          mapped ??
            new ProxyProtocolError(text.unexpectedStatus(target.proxy.origin, label, answer.status, printable(answer.reason, 40)), {
              code: 'BURROW_PROXY_STATUS',
              hint: text.notWebSocketHint,
              status: answer.status,
            }),
        );
      };
      const onError = (error: Error) => {
        if (error instanceof BurrowError) return fail(error);
        // Aborted while dialling (Ctrl-C): the dialler's AbortError, which the session expects.
        if (signal?.aborted) return fail(error);
        if (/handshake has timed out/i.test(error.message)) {
          return fail(timeoutError(subject, 'the WebSocket handshake', options.connectTimeoutMs));
        }
        // ws's own protocol complaints (bad Sec-WebSocket-Accept, a 101 without Upgrade, …), and
        // Node's HTTP parser refusing the answer (HPE_*): the proxy was reached, it spoke nonsense.
        if (!(error as NodeJS.ErrnoException).code || /^(WS_ERR|HPE_)/.test(String((error as NodeJS.ErrnoException).code))) {
          return fail(
            new ProxyProtocolError(text.malformedAnswer(target.proxy.origin, label, printable(error.message, 80)), {
              hint: text.notWebSocketHint,
              cause: error,
            }),
          );
        }
        fail(classifyNetworkError(error, subject, 'answer'));
      };
      const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      // ws's own handshakeTimeout never fires with an asynchronous createConnection (found by
      // fuzzing: a gateway that accepts TLS and stays silent hung burrow forever), so the
      // deadline is kept here.
      const timer = setTimeout(
        () => fail(timeoutError(subject, 'the WebSocket handshake', options.connectTimeoutMs)),
        Math.max(0, deadline - Date.now()),
      );
      const cleanup = () => {
        clearTimeout(timer);
        ws.off('open', onOpen);
        ws.off('unexpected-response', onResponse);
        ws.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      ws.once('open', onOpen);
      ws.once('unexpected-response', onResponse);
      ws.once('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });

    const stream = createWebSocketStream(ws);
    // Set by the dialler before the upgrade could succeed.
    const socket = wire!;
    const linger = lingerer(ws, stream, LINGER_QUIET_MS);
    if (options.pingIntervalMs > 0) keepalive(ws, stream, options.pingIntervalMs);
    reportLostConnection(ws, stream, socket, linger.closing);
    const readAtOpen = socket.bytesRead - stream.readableLength;
    const writtenAtOpen = socket.bytesWritten;
    return {
      stream,
      progress: () => ({ sent: socket.bytesWritten - writtenAtOpen, received: socket.bytesRead - readAtOpen, queued: socket.writableLength }),
      finish: linger.finish,
      explain: explainWebSocketError,
    };
  }
}

/** ws's errors in our words; the rest are socket errors. */
function explainWebSocketError(error: Error): string | undefined {
  // A write that met the WebSocket closing ("WebSocket is not open: readyState 2").
  if (/^WebSocket is not open/.test(error.message)) return text.webSocketClosedWhileSending;
  // A peer answering our close with an invalid code (websockify sends 1005) is ending, too.
  if ((error as NodeJS.ErrnoException).code === 'WS_ERR_INVALID_CLOSE_CODE') return undefined;
  return explainSocketError(error);
}

/** After local EOF, the server must have sent nothing for this long before we send close. */
export const LINGER_QUIET_MS = 1000;

/**
 * WebSocket has no half-close, and gateways such as websockify drop whatever is still in
 * flight the moment they read a close frame. So when our side ends (stdin EOF), the close frame
 * waits until the server has been quiet for `quietMs` (or has closed first): an echo or a
 * command's answer still arrives. The frame carries code 1000: ws's stream sends none when it
 * ends, which websockify answers with the illegal 1005.
 */
function lingerer(ws: import('ws').WebSocket, stream: Duplex, quietMs: number): { finish(): Promise<void>; closing(): boolean } {
  let closing: Promise<void> | undefined;
  let lastMessage = Date.now();
  ws.on('message', () => (lastMessage = Date.now()));
  const finish = (): Promise<void> => {
    if (closing) return closing;
    let flushed!: () => void;
    closing = new Promise<void>((resolve) => (flushed = resolve));
    let timer: NodeJS.Timeout | undefined;
    // Settles when the stream has flushed its frames ('finish') or the connection is closed.
    const settled = () => {
      stream.off('finish', settled);
      stream.off('close', settled);
      ws.off('close', settled);
      flushed();
    };
    // The wait ends early when the connection closes meanwhile. A closed WebSocket's stream is
    // not ended: ws would wait for a 'finish' of its destroyed socket that never comes.
    const done = () => {
      clearTimeout(timer);
      ws.off('close', done);
      if (ws.readyState === ws.CLOSED) return settled();
      stream.once('finish', settled);
      stream.once('close', settled);
      ws.once('close', settled);
      if (ws.readyState === ws.OPEN) ws.close(1000);
      stream.end();
    };
    const check = () => {
      if (ws.readyState !== ws.OPEN) return done();
      const quietFor = Date.now() - lastMessage;
      if (quietFor >= quietMs) return done();
      timer = setTimeout(check, quietMs - quietFor);
    };
    ws.once('close', done);
    check();
    return closing;
  };
  return { finish, closing: () => closing !== undefined };
}

/**
 * A connection that ends without a close frame (1006) while we were not closing is a lost
 * tunnel, not the end of the data: ws reports it as a plain close (it swallows the socket's
 * error), which would look like a clean EOF. Destroy the stream with the reason instead.
 */
function reportLostConnection(ws: import('ws').WebSocket, stream: Duplex, wire: Socket, closing: () => boolean): void {
  let wireError: NodeJS.ErrnoException | undefined;
  wire.once('error', (error) => (wireError = error));
  ws.once('close', (code: number) => {
    if (code !== 1006 || closing() || stream.destroyed) return;
    stream.destroy(
      wireError?.code === 'ECONNRESET'
        ? Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })
        : new KeepaliveError(text.webSocketLost),
    );
  });
}

/** Pings every interval; destroys `stream` with a KeepaliveError when pongs stop. */
function keepalive(ws: import('ws').WebSocket, stream: Duplex, intervalMs: number): void {
  let lastPong = Date.now();
  ws.on('pong', () => (lastPong = Date.now()));
  const timer = setInterval(() => {
    if (Date.now() - lastPong > intervalMs * MISSED_PONGS) {
      clearInterval(timer);
      stream.destroy(new KeepaliveError(text.keepaliveLost(Math.round((intervalMs * MISSED_PONGS) / 100) / 10)));
      ws.terminate();
      return;
    }
    if (ws.readyState === ws.OPEN) ws.ping();
  }, intervalMs);
  timer.unref();
  ws.once('close', () => clearInterval(timer));
}
