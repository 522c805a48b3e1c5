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
import type { TlsSettings } from '../net/tls.js';
import { text } from '../output/messages.js';
import { type ProxyAnswer, printable, statusToError } from './status.js';
import type { OpenRequest, Transport } from './transport.js';

/** Answers larger than this are not a proxy talking HTTP/1.1 to us. */
export const MAX_ANSWER_HEAD = 64 * 1024;

export interface ConnectTransportOptions {
  tls: TlsSettings | undefined;
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

type HeadParse = { answer: ProxyAnswer } | { malformed: string };

/** Parses an HTTP/1.x response head (without the final CRLFCRLF). */
export function parseAnswerHead(head: string): HeadParse {
  const lines = head.split('\r\n');
  const statusLine = lines[0] ?? '';
  const match = /^HTTP\/1\.[01] ([0-9]{3})(?: (.*))?$/.exec(statusLine);
  if (!match) return { malformed: `expected an HTTP/1.1 status line, got "${printable(statusLine, 60)}"` };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return { malformed: `bad header line "${printable(line, 60)}"` };
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { answer: { status: Number(match[1]), reason: match[2] ?? '', headers } };
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Reads the proxy's answer head from `socket`. Resolves with the answer once the head is
 * complete, having unshifted any bytes after it; the socket is left paused for the splice.
 */
function readAnswer(socket: Socket, target: Target, deadline: number, totalMs: number, signal?: AbortSignal): Promise<ProxyAnswer> {
  const proxy = target.proxy;
  const dest = target.destination.authority;
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      signal?.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const malformed = (what: string) =>
      fail(new ProxyProtocolError(text.malformedAnswer(proxy.origin, dest, what), { hint: text.malformedAnswerHint }));
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf(CRLFCRLF);
        if (end < 0) {
          if (buffered.length > MAX_ANSWER_HEAD) malformed(`the answer head is larger than ${MAX_ANSWER_HEAD / 1024} KiB`);
          return;
        }
        const parsed = parseAnswerHead(buffered.subarray(0, end).toString('latin1'));
        if ('malformed' in parsed) return malformed(parsed.malformed);
        buffered = buffered.subarray(end + 4);
        // 1xx answers are interim; the real answer follows (101 is not used by CONNECT).
        if (parsed.answer.status >= 100 && parsed.answer.status < 200) continue;
        cleanup();
        socket.pause();
        if (buffered.length > 0) socket.unshift(buffered);
        return resolve(parsed.answer);
      }
    };
    const onError = (error: Error) => fail(classifyNetworkError(error, target, 'answer'));
    const onEnd = () =>
      fail(
        buffered.length > 0
          ? new ProxyProtocolError(text.malformedAnswer(proxy.origin, dest, 'the answer was cut off'), { hint: text.malformedAnswerHint })
          : new ProxyProtocolError(text.closedBeforeAnswer(proxy.origin, dest), { hint: text.closedBeforeAnswerHint }),
      );
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer = setTimeout(() => fail(timeoutError(target, 'waiting for the answer', totalMs)), Math.max(0, deadline - Date.now()));
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
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
    const socket = await dialProxy({ target, tls: this.#options.tls, deadline, signal });
    try {
      socket.write(connectRequest(target, token, this.#options.userAgent, this.#options.headers));
      const answer = await readAnswer(socket, target, deadline, totalMs, signal);
      const error = statusToError(answer, target, token ? tokenInfo(token).user : undefined);
      if (error) throw error;
      return socket;
    } catch (error) {
      socket.destroy();
      throw error instanceof BurrowError ? error : classifyNetworkError(error, target, 'answer');
    }
  }
}
