/**
 * The CONNECT transport (PROTOCOL.md "The tunnel"): TLS to the proxy, `CONNECT host:port` with
 * the token, read the answer head, and hand back the socket. Bytes that arrive in the same
 * read as the answer head belong to the stream and are pushed back with `unshift`.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { tokenInfo } from '../auth/jwt.js';
import type { Target } from '../cli/destination.js';
import { BurrowError, ProxyProtocolError } from '../errors.js';
import { classifyNetworkError, dialProxy, timeoutError } from '../net/dial.js';
import { type AnswerErrors, readAnswer } from '../net/http-answer.js';
import type { ForwardProxy } from '../net/proxy-env.js';
import type { TlsSettings } from '../net/tls.js';
import { text } from '../output/messages.js';
import { statusToError } from './status.js';
import type { OpenRequest, Transport } from './transport.js';

export interface ConnectTransportOptions {
  tls: TlsSettings | undefined;
  /** The corporate forward proxy to go through, if any. */
  forward?: ForwardProxy | undefined;
  /** Extra request headers (`--header`), e.g. a gateway's own API key. */
  headers?: Array<[string, string]>;
  /** Budget for TCP + TLS + the proxy's answer, per tunnel. */
  connectTimeoutMs: number;
  userAgent: string;
}

/** Builds the CONNECT request head. The token goes only here, inside TLS. */
export function connectRequest(target: Target, token: string | undefined, userAgent: string, headers: Array<[string, string]> = []): string {
  const authority = target.destination.authority;
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: ${userAgent}\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  if (token) head += `Authorization: Pomerium ${token}\r\n`;
  return `${head}\r\n`;
}

/** The identity proxy's answer failures, naming it and the destination. */
function answerErrors(target: Target, totalMs: number): AnswerErrors {
  const proxy = target.proxy.origin;
  const dest = target.destination.authority;
  return {
    malformed: (what) => new ProxyProtocolError(text.malformedAnswer(proxy, dest, what), { hint: text.malformedAnswerHint }),
    closed: (partial) =>
      partial
        ? new ProxyProtocolError(text.malformedAnswer(proxy, dest, 'the answer was cut off'), { hint: text.malformedAnswerHint })
        : new ProxyProtocolError(text.closedBeforeAnswer(proxy, dest), { hint: text.closedBeforeAnswerHint }),
    network: (error) => classifyNetworkError(error, target, 'answer'),
    timeout: () => timeoutError(target, 'waiting for the answer', totalMs),
  };
}

export class ConnectTransport implements Transport {
  readonly name = 'connect';
  readonly #options: ConnectTransportOptions;

  constructor(options: ConnectTransportOptions) {
    this.#options = options;
  }

  async open(request: OpenRequest): Promise<Duplex> {
    const { target, token, signal } = request;
    const totalMs = this.#options.connectTimeoutMs;
    const deadline = Date.now() + totalMs;
    const socket = await dialProxy({ target, tls: this.#options.tls, forward: this.#options.forward, deadline, signal });
    try {
      socket.write(connectRequest(target, token, this.#options.userAgent, this.#options.headers));
      const answer = await readAnswer(socket, deadline, answerErrors(target, totalMs), signal);
      const error = statusToError(answer, target, token ? tokenInfo(token).user : undefined);
      if (error) throw error;
      if (this.#options.forward) holdHalfClose(socket, HALF_CLOSE_QUIET_MS);
      return socket;
    } catch (error) {
      socket.destroy();
      throw error instanceof BurrowError ? error : classifyNetworkError(error, target, 'answer');
    }
  }
}

/** Through a forward proxy, our FIN waits until the server has been quiet this long. */
export const HALF_CLOSE_QUIET_MS = 1000;

/**
 * Squid (and other forward proxies) tear the whole tunnel down when the client half-closes, so
 * an answer still on its way is lost (`printf cmd | burrow tcp --listen - …`). Through a forward
 * proxy, the FIN that ends our side therefore waits until the server has sent nothing for
 * `quietMs` while we were ready to read (or has closed first), as the WebSocket transport
 * lingers before its close frame. Counters are sampled by a timer: no work per chunk.
 */
function holdHalfClose(socket: Socket, quietMs: number): void {
  const final = socket._final.bind(socket);
  socket._final = (callback: (error?: Error | null) => void) => {
    let read = socket.bytesRead;
    let quietSince = Date.now();
    const done = () => {
      clearInterval(timer);
      socket.off('end', done);
      socket.off('close', done);
      final(callback);
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
  };
}
