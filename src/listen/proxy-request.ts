/**
 * The local side of `burrow proxy`: one port that speaks HTTP CONNECT, SOCKS5 and SOCKS4/4a,
 * told apart by the first byte (0x05 SOCKS5, 0x04 SOCKS4, anything else HTTP). This module reads
 * a client's request off an accepted connection, bounded in size and time, and builds the
 * answers the client gets once the tunnel's fate is known. It knows nothing of tunnels: the
 * proxy command decides what a request may reach and opens the tunnel.
 *
 * The parsers are pure (a buffer in, a step out) and re-run over everything received so far,
 * which stays small: a SOCKS handshake is at most about 520 bytes, an HTTP head
 * {@link MAX_HTTP_HEAD}. Bytes after the request (a client that sends its first data before
 * the answer, as ssh and TLS clients may) are put back on the socket for the tunnel.
 */
import type { Socket } from 'node:net';
import { type BurrowError, type ErrorCode, ProxyRequestError } from '../errors.js';
import { text } from '../output/messages.js';
import { formatAuthority } from '../target.js';

export type ProxyProtocol = 'http' | 'socks5' | 'socks4';

/** What a client asked for. */
export interface ProxyRequest {
  protocol: ProxyProtocol;
  /**
   * `host:port` as the client named it, unchecked: the request target of an HTTP CONNECT, or the
   * SOCKS address and port (an IPv6 address in brackets). The command validates it.
   */
  authority: string;
  /** Bytes the client sent after its request: the first bytes of the tunnel. */
  rest: Buffer;
}

/**
 * How a request is turned down, as each protocol says it. `slow` (the handshake took too long)
 * is answered on HTTP only; a SOCKS client just sees the connection close.
 */
export type Answer =
  | 'refused'
  | 'denied'
  | 'not_found'
  | 'unavailable'
  | 'bad_gateway'
  | 'timeout'
  | 'bad_request'
  | 'method'
  | 'command'
  | 'address_type'
  | 'too_large'
  | 'slow';

/** HTTP status, SOCKS5 reply code and SOCKS4 reply code of each answer (docs/guide.md has the table). */
const ANSWERS: Record<Answer, { http: number; reason: string; socks5: number; socks4: number }> = {
  refused: { http: 403, reason: 'Forbidden', socks5: 0x02, socks4: 0x5b },
  denied: { http: 403, reason: 'Forbidden', socks5: 0x02, socks4: 0x5b },
  not_found: { http: 404, reason: 'Not Found', socks5: 0x04, socks4: 0x5b },
  unavailable: { http: 503, reason: 'Service Unavailable', socks5: 0x05, socks4: 0x5b },
  bad_gateway: { http: 502, reason: 'Bad Gateway', socks5: 0x01, socks4: 0x5b },
  timeout: { http: 504, reason: 'Gateway Timeout', socks5: 0x06, socks4: 0x5b },
  bad_request: { http: 400, reason: 'Bad Request', socks5: 0x01, socks4: 0x5b },
  method: { http: 405, reason: 'Method Not Allowed', socks5: 0x07, socks4: 0x5b },
  command: { http: 405, reason: 'Method Not Allowed', socks5: 0x07, socks4: 0x5b },
  address_type: { http: 400, reason: 'Bad Request', socks5: 0x08, socks4: 0x5b },
  too_large: { http: 431, reason: 'Request Header Fields Too Large', socks5: 0x01, socks4: 0x5b },
  slow: { http: 408, reason: 'Request Timeout', socks5: 0x01, socks4: 0x5b },
};

/** The HTTP status and SOCKS reply codes of `answer`, for docs and tests. */
export function answerCodes(answer: Answer): { http: number; socks5: number; socks4: number } {
  const { http, socks5, socks4 } = ANSWERS[answer];
  return { http, socks5, socks4 };
}

/**
 * What a tunnel that could not open tells the client, by the error's code: the proxy's own
 * refusals keep their meaning (403, 404, 503), a proxy that cannot be reached or spoken to is a
 * bad gateway, a timeout a gateway timeout. A sign-in that did not happen is a denial.
 */
export function answerFor(code: ErrorCode): Answer {
  switch (code) {
    case 'BURROW_ACCESS_DENIED':
    case 'BURROW_AUTH_REQUIRED':
    case 'BURROW_LOGIN_TIMEOUT':
    case 'BURROW_LOGIN_FAILED':
    case 'BURROW_LOGIN_ABORTED':
    case 'BURROW_LOGIN_REJECTED':
    case 'BURROW_LOCK_TIMEOUT':
    case 'BURROW_LOGIN_UNAVAILABLE':
    case 'BURROW_DESTINATION_REFUSED':
      return 'refused';
    case 'BURROW_ROUTE_NOT_FOUND':
      return 'not_found';
    case 'BURROW_UPSTREAM_UNAVAILABLE':
    case 'BURROW_TOO_MANY_FILES':
      return 'unavailable';
    case 'BURROW_TIMEOUT':
      return 'timeout';
    case 'BURROW_PROXY_REQUEST':
      return 'bad_request';
    default:
      return 'bad_gateway';
  }
}

/** The answer that opens the tunnel: `200 Connection Established`, or SOCKS reply 0x00 / 0x5A. */
export function successReply(protocol: ProxyProtocol): Buffer {
  if (protocol === 'http') return Buffer.from('HTTP/1.1 200 Connection Established\r\n\r\n', 'latin1');
  return protocol === 'socks5' ? socks5Reply(0x00) : socks4Reply(0x5a);
}

/**
 * The answer that turns the request down. HTTP gets a short plain-text body saying why (the
 * message and hint a log line has: hosts and statuses, never a token).
 */
export function failureReply(protocol: ProxyProtocol, answer: Answer, why: string): Buffer {
  const codes = ANSWERS[answer];
  if (protocol === 'socks5') return socks5Reply(codes.socks5);
  if (protocol === 'socks4') return socks4Reply(codes.socks4);
  const body = Buffer.from(`${why.replace(/[\r\n]+/g, ' ')}\n`, 'utf8');
  const allow = answer === 'method' ? 'Allow: CONNECT\r\n' : '';
  const head = `HTTP/1.1 ${codes.http} ${codes.reason}\r\n${allow}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/** VER REP RSV ATYP=IPv4 0.0.0.0:0: no bound address to report (the tunnel's far end is the proxy's). */
function socks5Reply(code: number): Buffer {
  return Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
}

/** VN=0 CD DSTPORT DSTIP, both zero. */
function socks4Reply(code: number): Buffer {
  return Buffer.from([0x00, code, 0, 0, 0, 0, 0, 0]);
}

/** SOCKS5's "no acceptable methods". */
const SOCKS5_NO_METHOD = Buffer.from([0x05, 0xff]);
/** SOCKS5's "no authentication required", the one method burrow offers. */
const SOCKS5_NO_AUTH = Buffer.from([0x05, 0x00]);

/** Bytes of request line and headers an HTTP client may send. */
export const MAX_HTTP_HEAD = 16 * 1024;
/** Bytes of a SOCKS4 user id or SOCKS4a host name (each ends with a NUL). */
const MAX_SOCKS4_FIELD = 255;

/** One step of parsing: more bytes needed, a request, or a failure (with the answer to give, if any). */
export type Step =
  | { kind: 'more'; /** SOCKS5: the greeting is complete and acceptable (send "no authentication"). */ greeted?: boolean }
  | { kind: 'request'; request: ProxyRequest }
  | { kind: 'fail'; error: BurrowError; answer: Answer | 'no_method' };

const fail = (answer: Answer | 'no_method', message: string, hint: string): Step => ({ kind: 'fail', error: new ProxyRequestError(message, { hint }), answer });

/** Which protocol a connection speaks, from its first byte. */
export function sniff(first: number): ProxyProtocol {
  return first === 0x05 ? 'socks5' : first === 0x04 ? 'socks4' : 'http';
}

/**
 * Parses what a client sent so far. `scanFrom` is where the last HTTP parse stopped looking for
 * the end of the head (so a head sent a byte at a time is not scanned again from the start).
 */
export function parseRequest(buffer: Buffer, scanFrom = 0): Step {
  if (buffer.length === 0) return { kind: 'more' };
  switch (sniff(buffer[0]!)) {
    case 'socks5':
      return parseSocks5(buffer);
    case 'socks4':
      return parseSocks4(buffer);
    default:
      return parseHttp(buffer, scanFrom);
  }
}

function parseSocks5(buffer: Buffer): Step {
  if (buffer.length < 2) return { kind: 'more' };
  const count = buffer[1]!;
  if (count === 0) return fail('no_method', text.socksNoMethods, text.socksAuthHint);
  const greeting = 2 + count;
  if (buffer.length < greeting) return { kind: 'more' };
  if (!buffer.subarray(2, greeting).includes(0x00)) return fail('no_method', text.socksAuthOnly, text.socksAuthHint);
  const request = buffer.subarray(greeting);
  if (request.length < 5) return { kind: 'more', greeted: true };
  if (request[0] !== 0x05) return fail('bad_request', text.malformedSocks(`the request has version ${request[0]}, not 5`), text.proxyClientHint);
  const command = request[1]!;
  const type = request[3]!;
  let host: string;
  let at: number;
  if (type === 0x01) {
    if (request.length < 4 + 4 + 2) return { kind: 'more', greeted: true };
    host = [...request.subarray(4, 8)].join('.');
    at = 8;
  } else if (type === 0x03) {
    const length = request[4]!;
    if (length === 0) return fail('bad_request', text.malformedSocks('the host name is empty'), text.proxyClientHint);
    if (request.length < 5 + length + 2) return { kind: 'more', greeted: true };
    host = request.subarray(5, 5 + length).toString('latin1');
    at = 5 + length;
  } else if (type === 0x04) {
    if (request.length < 4 + 16 + 2) return { kind: 'more', greeted: true };
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(request.readUInt16BE(4 + i * 2).toString(16));
    host = groups.join(':');
    at = 20;
  } else {
    return fail('address_type', text.socksAddressType(type), text.proxyClientHint);
  }
  if (command !== 0x01) return fail('command', text.socksCommand(socksCommandName(command)), text.socksCommandHint);
  const port = request.readUInt16BE(at);
  return { kind: 'request', request: { protocol: 'socks5', authority: formatAuthority(host, port), rest: Buffer.from(request.subarray(at + 2)) } };
}

function socksCommandName(command: number): string {
  return command === 0x02 ? 'BIND' : command === 0x03 ? 'UDP ASSOCIATE' : `0x${command.toString(16).padStart(2, '0')}`;
}

/** A NUL-terminated field of at most MAX_SOCKS4_FIELD bytes at `from`: its end, undefined for more, or a failure. */
function nulField(buffer: Buffer, from: number, what: string): number | undefined | Step {
  const end = buffer.indexOf(0x00, from);
  if (end >= 0 && end - from <= MAX_SOCKS4_FIELD) return end;
  if (end < 0 && buffer.length - from <= MAX_SOCKS4_FIELD) return undefined;
  return fail('bad_request', text.malformedSocks(`the ${what} is longer than ${MAX_SOCKS4_FIELD} bytes`), text.proxyClientHint);
}

function parseSocks4(buffer: Buffer): Step {
  if (buffer.length < 9) return { kind: 'more' };
  const command = buffer[1]!;
  const port = buffer.readUInt16BE(2);
  const ip = [...buffer.subarray(4, 8)];
  const user = nulField(buffer, 8, 'user id');
  if (user === undefined) return { kind: 'more' };
  if (typeof user !== 'number') return user;
  let host = ip.join('.');
  let end = user + 1;
  // SOCKS4a: 0.0.0.x (x not 0) means a host name follows the user id.
  if (ip[0] === 0 && ip[1] === 0 && ip[2] === 0 && ip[3] !== 0) {
    const name = nulField(buffer, end, 'host name');
    if (name === undefined) return { kind: 'more' };
    if (typeof name !== 'number') return name;
    host = buffer.subarray(end, name).toString('latin1');
    end = name + 1;
  }
  if (command !== 0x01) return fail('command', text.socksCommand(socksCommandName(command)), text.socksCommandHint);
  return { kind: 'request', request: { protocol: 'socks4', authority: formatAuthority(host, port), rest: Buffer.from(buffer.subarray(end)) } };
}

/** An HTTP token (a method), RFC 9110. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function parseHttp(buffer: Buffer, scanFrom: number): Step {
  // The head ends at the first empty line; bare LFs are taken as line ends too.
  const from = Math.max(0, scanFrom - 3);
  const crlf = buffer.indexOf('\r\n\r\n', from, 'latin1');
  const lf = buffer.indexOf('\n\n', from, 'latin1');
  const ends = [crlf < 0 ? -1 : crlf + 4, lf < 0 ? -1 : lf + 2].filter((n) => n > 0);
  if (ends.length === 0) {
    if (buffer.length > MAX_HTTP_HEAD) return fail('too_large', text.httpHeadTooLarge(MAX_HTTP_HEAD / 1024), text.proxyClientHint);
    return { kind: 'more' };
  }
  const end = Math.min(...ends);
  if (end > MAX_HTTP_HEAD) return fail('too_large', text.httpHeadTooLarge(MAX_HTTP_HEAD / 1024), text.proxyClientHint);
  const head = buffer.subarray(0, end).toString('latin1');
  const line = head.split(/\r?\n/, 1)[0]!;
  const parts = line.split(' ');
  if (parts.length !== 3 || !TOKEN.test(parts[0]!) || parts[1] === '' || !/^HTTP\/1\.[0-9]$/.test(parts[2]!)) {
    return fail('bad_request', text.malformedHttp(printableStart(line)), text.proxyClientHint);
  }
  const [method, target] = parts as [string, string, string];
  if (method !== 'CONNECT') return fail('method', text.httpMethod(method), text.httpMethodHint);
  return { kind: 'request', request: { protocol: 'http', authority: target, rest: Buffer.from(buffer.subarray(end)) } };
}

/** The first characters of a request line, printable, for a message. */
function printableStart(line: string): string {
  const shown = line.slice(0, 60).replace(/[^\x20-\x7e]/g, '?');
  return line.length > 60 ? `${shown}…` : shown;
}

export interface ReadOptions {
  /** The whole handshake must arrive within this long. */
  timeoutMs: number;
  /** Stops waiting (burrow is shutting down): the connection is destroyed. */
  signal: AbortSignal;
}

/** How reading a request ended: a request, a failure answered (or not) and closed, or a client that left. */
export type ReadResult =
  | { kind: 'request'; request: ProxyRequest }
  | { kind: 'failed'; error: BurrowError; protocol: ProxyProtocol }
  | { kind: 'left'; reason: string };

/**
 * Reads one request from `socket` (paused, as the listener hands it out). On a request, the
 * socket is paused again with the bytes after the request put back, ready for the tunnel. On a
 * failure, the client gets its answer and the connection is closed ({@link closeWith}).
 */
export function readRequest(socket: Socket, options: ReadOptions): Promise<ReadResult> {
  return new Promise((resolve) => {
    let buffer: Buffer = Buffer.alloc(0);
    let scanned = 0;
    let greeted = false;
    const done = (result: ReadResult) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', onClose);
      options.signal.removeEventListener('abort', onAbort);
      resolve(result);
    };
    const protocol = () => (buffer.length > 0 ? sniff(buffer[0]!) : 'http');
    const refuse = (error: BurrowError, answer: Answer | 'no_method' | undefined) => {
      const p = protocol();
      let reply = answer === undefined ? undefined : answer === 'no_method' ? SOCKS5_NO_METHOD : failureReply(p, answer, answerText(error));
      // A SOCKS5 request is only read after an acceptable greeting: its client waits for the method choice first.
      if (reply && p === 'socks5' && answer !== 'no_method' && !greeted) reply = Buffer.concat([SOCKS5_NO_AUTH, reply]);
      closeWith(socket, reply);
      done({ kind: 'failed', error, protocol: p });
    };
    const onData = (chunk: Buffer) => {
      buffer = buffer.length === 0 ? chunk : Buffer.concat([buffer, chunk]);
      const step = parseRequest(buffer, scanned);
      scanned = buffer.length;
      if (step.kind === 'more') {
        if (step.greeted && !greeted) {
          greeted = true;
          socket.write(SOCKS5_NO_AUTH);
        }
        return;
      }
      if (step.kind === 'fail') return refuse(step.error, step.answer);
      // A client that sent its greeting and request in one go still expects the method reply first.
      if (step.request.protocol === 'socks5' && !greeted) socket.write(SOCKS5_NO_AUTH);
      socket.pause();
      done(step);
      if (step.request.rest.length > 0) socket.unshift(step.request.rest);
    };
    const onEnd = () => {
      if (buffer.length === 0) {
        closeWith(socket, undefined);
        return done({ kind: 'left', reason: 'closed without sending a request' });
      }
      refuse(new ProxyRequestError(text.requestCutOff, { hint: text.proxyClientHint }), protocol() === 'http' ? 'bad_request' : undefined);
    };
    const onError = (error: Error) => {
      socket.destroy();
      done({ kind: 'left', reason: error.message });
    };
    const onClose = () => done({ kind: 'left', reason: 'closed' });
    const onAbort = () => {
      socket.destroy();
      done({ kind: 'left', reason: 'shutting down' });
    };
    const timer = setTimeout(() => {
      const seconds = options.timeoutMs / 1000;
      // An HTTP client is told; a SOCKS client has no reply code for it.
      refuse(new ProxyRequestError(text.handshakeTimeout(seconds), { hint: text.proxyClientHint }), protocol() === 'http' ? 'slow' : undefined);
    }, options.timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    if (options.signal.aborted) return onAbort();
    options.signal.addEventListener('abort', onAbort, { once: true });
    // The listener hands sockets out paused (readableFlowing false): a 'data' listener alone does not start them.
    socket.resume();
  });
}

/** An error as the body of an HTTP answer: its line and its hint. */
export function answerText(error: BurrowError): string {
  return error.hint ? `${error.message} (${error.hint})` : error.message;
}

/** How long a turned-down client has to read its answer and hang up before the connection is dropped. */
const LINGER_MS = 2000;

/**
 * Sends `reply` (if any) and closes the connection without losing it: the write side ends after
 * the reply, what the client still sends is read and dropped (an unread receive queue would make
 * the close a reset, which can destroy the reply before the client reads it), and the socket is
 * destroyed once the client hangs up, or after {@link LINGER_MS}.
 */
export function closeWith(socket: Socket, reply: Buffer | undefined): void {
  socket.on('error', () => {});
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('end', () => socket.destroy());
  if (reply) socket.end(reply);
  else socket.end();
  socket.resume();
}
