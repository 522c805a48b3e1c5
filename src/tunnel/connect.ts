/**
 * The CONNECT transport (docs/protocol.md "The tunnel"): TLS to the proxy, `CONNECT host:port`
 * with the token, read the answer head, and hand back the socket. Bytes that arrive in the same
 * read as the answer head belong to the stream and are pushed back with `unshift`.
 */
import type { Socket } from 'node:net';
import { tokenInfo } from '../auth/jwt.js';
import { BurrowError, ProxyProtocolError } from '../errors.js';
import { classifyNetworkError, type DialSubject, dialProxy, dialSubject, timeoutError } from '../net/dial.js';
import { type AnswerErrors, readAnswer } from '../net/http-answer.js';
import { type RouteOptions, routeHeaders } from '../net/route.js';
import { text } from '../output/messages.js';
import type { Target } from '../target.js';
import { statusToError } from './status.js';
import { explainSocketError, type OpenRequest, type Transport, type Tunnel } from './transport.js';

/** Builds the CONNECT request head. The token goes only here, inside TLS. */
export function connectRequest(target: Target, token: string | undefined, route: RouteOptions): string {
  const authority = target.destination.authority;
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  for (const [name, value] of routeHeaders(route, token)) head += `${name}: ${value}\r\n`;
  return `${head}\r\n`;
}

/** The identity proxy's answer failures, naming it and the destination (also for `burrow doctor`'s probe). */
export function answerErrors(subject: DialSubject, totalMs: number): AnswerErrors {
  const { server: proxy, dest } = subject;
  return {
    malformed: (what) => new ProxyProtocolError(text.malformedAnswer(proxy, dest, what), { hint: text.malformedAnswerHint }),
    closed: (partial) =>
      partial
        ? new ProxyProtocolError(text.malformedAnswer(proxy, dest, text.answerCutOff), { hint: text.malformedAnswerHint })
        : new ProxyProtocolError(text.closedBeforeAnswer(proxy, dest), { hint: text.closedBeforeAnswerHint }),
    network: (error) => classifyNetworkError(error, subject, 'answer'),
    timeout: () => timeoutError(subject, 'waiting for the answer', totalMs),
  };
}

/** 405/501 to CONNECT: a gateway that only passes WebSocket upgrades (or plain HTTP). */
const connectHint = (status: number) => (status === 405 || status === 501 ? text.connectRefusedHint : text.unexpectedStatusHint);

export class ConnectTransport implements Transport {
  readonly name = 'connect';
  readonly framesInJavaScript = false;
  readonly #route: RouteOptions;

  constructor(route: RouteOptions) {
    this.#route = route;
  }

  async open(request: OpenRequest): Promise<Tunnel> {
    const route = this.#route;
    const socket = await requestOverHttp1(request, route, connectRequest(request.target, request.token, route), { unexpectedHint: connectHint });
    return socketTunnel(socket, route.forward ? HALF_CLOSE_QUIET_MS : 0);
  }
}

export interface Http1RequestOptions {
  /** The request is an upgrade: a 101 answer is the proxy's yes too (Envoy answers 200). */
  upgrade?: boolean;
  /** Advice for a status with no meaning of its own (see statusToError). */
  unexpectedHint?: (status: number) => string;
}

/**
 * The HTTP/1.1 opening every stream-based transport shares: dial the proxy (TLS, ALPN
 * http/1.1, through a forward proxy if any), send `head`, read the answer within
 * --connect-timeout and map a refusal to burrow's errors. Resolves with the socket once the
 * proxy said yes; bytes that came with the answer head wait in it.
 */
export async function requestOverHttp1(request: OpenRequest, route: RouteOptions, head: string, options: Http1RequestOptions = {}): Promise<Socket> {
  const { target, token, signal } = request;
  const totalMs = route.connectTimeoutMs;
  const deadline = Date.now() + totalMs;
  const label = target.destination.authority;
  const subject = dialSubject(target.proxy, label);
  const socket = await dialProxy({ endpoint: target.proxy, alpn: ['http/1.1'], label, tls: route.tls, forward: route.forward, deadline, signal });
  try {
    socket.write(head);
    const answer = await readAnswer(socket, deadline, answerErrors(subject, totalMs), signal, options.upgrade);
    if (!(options.upgrade && answer.status === 101)) {
      const user = token ? tokenInfo(token).user : undefined;
      const error = statusToError(answer, { proxy: target.proxy.origin, dest: label }, { user, unexpectedHint: options.unexpectedHint });
      if (error) throw error;
    }
    return socket;
  } catch (error) {
    socket.destroy();
    throw error instanceof BurrowError ? error : classifyNetworkError(error, subject, 'answer');
  }
}

/** Through a forward proxy, our FIN waits until the server has been quiet this long. */
export const HALF_CLOSE_QUIET_MS = 1000;

/**
 * The socket as a tunnel. Its counters start after the proxy's answer head; bytes that came
 * with the head and wait in the socket's buffer count as received.
 */
export function socketTunnel(socket: Socket, holdFinMs: number): Tunnel {
  const readAtOpen = socket.bytesRead - socket.readableLength;
  const writtenAtOpen = socket.bytesWritten;
  return {
    stream: socket,
    progress: () => ({ sent: socket.bytesWritten - writtenAtOpen, received: socket.bytesRead - readAtOpen, queued: socket.writableLength }),
    finish: () => (holdFinMs > 0 ? endWhenQuiet(socket, holdFinMs) : endAndFlush(socket)),
    explain: explainSocketError,
  };
}

/**
 * Squid (and other forward proxies) tear the whole tunnel down when the client half-closes, so
 * an answer still on its way is lost (`printf cmd | burrow tcp --listen - …`). Through a forward
 * proxy, the FIN that ends our side therefore waits until the server has sent nothing for
 * `quietMs` while we were ready to read (or has closed first), as the WebSocket transport
 * lingers before its close frame. Counters are sampled by a timer: no work per chunk.
 */
function endWhenQuiet(socket: Socket, quietMs: number): Promise<void> {
  // The server has closed its side already: nothing more can come, so there is nothing to wait for.
  if (socket.readableEnded || socket.destroyed) return endAndFlush(socket);
  let read = socket.bytesRead;
  let quietSince = Date.now();
  let ended!: () => void;
  const flushed = new Promise<void>((resolve) => (ended = resolve));
  const done = () => {
    clearInterval(timer);
    socket.off('end', done);
    socket.off('close', done);
    void endAndFlush(socket).then(ended);
  };
  const timer = setInterval(() => {
    if (socket.bytesRead !== read || socket.isPaused() || socket.readableLength > 0) {
      read = socket.bytesRead;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) {
      done();
    }
  }, Math.max(10, Math.floor(quietMs / 10)));
  socket.once('end', done);
  socket.once('close', done);
  return flushed;
}

/**
 * Sends our FIN after whatever is still queued, and settles once the socket has handed it all
 * to the kernel ('finish'), or is gone: destroying it before then would drop the queued bytes.
 */
export function endAndFlush(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed || socket.writableFinished) return resolve();
    const done = () => {
      socket.off('finish', done);
      socket.off('close', done);
      resolve();
    };
    socket.once('finish', done);
    socket.once('close', done);
    socket.end();
  });
}
