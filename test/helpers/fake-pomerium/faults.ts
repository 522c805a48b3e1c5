/**
 * What tests make the proxy do instead of its normal handling: canned answers from the
 * `respond` hook (well-formed or raw bytes), a delay before each tunnel request, or never
 * answering one; and a raw answer server for what is not a proxy at all.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { connect as connectTcp, createServer as createTcpServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { setTimeout as delay } from 'node:timers/promises';

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

/** The fault options of {@link FakePomeriumOptions} that this file acts on. */
export interface FaultOptions {
  respond?: (request: FakeRequest) => CannedResponse | undefined;
  onConnectDelayMs?: number;
  delayRequest?: (request: FakeRequest) => number | undefined;
  stallConnect?: boolean;
}

/**
 * The delay and stall faults of a tunnel request (CONNECT or upgrade): waits `onConnectDelayMs`
 * plus what `delayRequest` says for this request, then says whether to go on. False when the
 * proxy went down while waiting, or with `stallConnect` (the socket then stays open until the
 * client or close() ends it).
 */
export async function proceedAfterFaults(options: FaultOptions, closing: AbortSignal, request: FakeRequest): Promise<boolean> {
  const ms = (options.onConnectDelayMs ?? 0) + (options.delayRequest?.(request) ?? 0);
  if (ms > 0) {
    try {
      await delay(ms, undefined, { signal: closing });
    } catch {
      return false; // close() was called while we waited
    }
  }
  return !options.stallConnect;
}

/**
 * Asks the `respond` hook about `request`; when it answers, hands the answer to `raw` or
 * `answer` and returns true (the normal handling is then skipped).
 */
export function cannedAnswer(
  options: FaultOptions,
  request: FakeRequest,
  raw: (data: Buffer | string) => void,
  answer: (status: number, headers?: Record<string, string>, body?: string) => void,
): boolean {
  const canned = options.respond?.(request);
  if (!canned) return false;
  if ('raw' in canned) raw(canned.raw);
  else answer(canned.status, canned.headers, canned.body);
  return true;
}

/** What a {@link startRawAnswerServer} does after its answer. */
export type RawThen = 'hold' | 'end' | 'echo' | { pipeTo: number };

export interface RawAnswerOptions {
  /** The bytes sent once the request head (up to its blank line) has come. */
  answer: Buffer | string;
  /** TLS with the committed proxy certificate (a stand-in identity proxy), or plain TCP (a forward proxy). */
  tls: { cert: string; key: string } | undefined;
  /** Sends the answer in pieces of this many bytes (1 = byte by byte), each its own TCP segment. */
  chunkBytes?: number;
  /** Pause between pieces. */
  chunkIntervalMs?: number;
  /** After the answer: keep the connection open and silent, end it, echo what follows, or carry it to a loopback port. */
  then: RawThen;
}

export interface RawAnswerServer {
  port: number;
  /** Requests whose head came in full. */
  readonly requests: number;
  close(): Promise<void>;
}

/**
 * A server that is not a proxy at all, or one that answers in odd ways: it waits for a request
 * head, sends fixed bytes (optionally dribbled a few at a time), then holds, ends or echoes. Real
 * sockets on loopback, so the client's reads see real segment boundaries and real waits.
 */
export async function startRawAnswerServer(options: RawAnswerOptions): Promise<RawAnswerServer> {
  const answer = Buffer.from(options.answer);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let requests = 0;
  const onSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 64 * 1024) socket.destroy();
        return;
      }
      socket.off('data', onData);
      // Keep what the client sends next (it may start as soon as the last byte is out) for 'then'.
      socket.pause();
      requests++;
      const rest = head.subarray(end + 4);
      const size = options.chunkBytes ?? answer.length;
      let offset = 0;
      const afterAnswer = (): void => {
        if (options.then === 'end') socket.end();
        else if (options.then === 'echo') {
          if (rest.length > 0) socket.write(rest);
          socket.pipe(socket);
        } else if (typeof options.then === 'object') {
          const upstream = connectTcp({ host: '127.0.0.1', port: options.then.pipeTo, allowHalfOpen: true });
          sockets.add(upstream);
          upstream.on('close', () => sockets.delete(upstream));
          upstream.on('error', () => socket.destroy());
          socket.on('close', () => upstream.destroy());
          if (rest.length > 0) upstream.write(rest);
          socket.pipe(upstream).pipe(socket);
        } else socket.resume(); // 'hold': read and drop, never answer more
      };
      const next = (): void => {
        if (socket.destroyed) return;
        if (offset >= answer.length) return afterAnswer();
        socket.write(answer.subarray(offset, offset + size));
        offset += size;
        const timer = setTimeout(() => {
          timers.delete(timer);
          next();
        }, options.chunkIntervalMs ?? 0);
        timers.add(timer);
      };
      next();
    };
    socket.on('data', onData);
  };
  const server = options.tls
    ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ['http/1.1'], allowHalfOpen: true }, onSocket)
    : createTcpServer({ allowHalfOpen: true }, onSocket);
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
