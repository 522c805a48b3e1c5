import { createHash } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { chunked, payload as makePayload, sha256 } from './data.js';

/** A plain TCP server on a loopback address and a free port, for tunnels to point at. */
export interface TcpServer {
  readonly host: string;
  readonly port: number;
  /** `host:port`, ready for a route's `to: tcp://…` or a burrow destination (`[::1]:port` for IPv6). */
  readonly address: string;
  /** How many connections were accepted so far. */
  readonly connections: number;
  readonly server: Server;
  /** Destroys every open connection, then closes the listener. Safe to call more than once. */
  close(): Promise<void>;
}

/** Options shared by every server in this module. */
export interface TcpServerOptions {
  /** Loopback address to listen on; default `127.0.0.1`. */
  host?: string;
}

/**
 * Starts a TCP server that hands each accepted socket to `handler`. Sockets allow half-open
 * connections, so a handler sees the client's `end` and may still write afterwards.
 */
export async function startTcpServer(
  handler: (socket: Socket) => void,
  options: TcpServerOptions = {},
): Promise<TcpServer> {
  const host = options.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Clients under test vanish abruptly (resets, destroyed tunnels); that is not a test failure
    // by itself, and an unhandled 'error' would crash the whole test process.
    socket.on('error', () => {});
    handler(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    host,
    port,
    address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`,
    server,
    get connections() {
      return connections;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

/**
 * Starts a TCP echo server: every byte is sent back, and once the client half-closes, the
 * echo finishes sending and then ends its side too (`pipe` ends the destination on `end`).
 */
export function startEchoServer(options: TcpServerOptions = {}): Promise<TcpServer> {
  return startTcpServer((socket) => socket.pipe(socket), options);
}

/** What a sink connection received, reported once the client ended its side. */
export interface SinkResult {
  bytes: number;
  /** Hex SHA-256 of everything received. */
  sha256: string;
}

/** A TCP server that swallows and hashes everything it is sent. */
export interface SinkServer extends TcpServer {
  /**
   * Resolves when the `index`-th accepted connection (0-based, in accept order) has been
   * ended by the client; rejects if it closed without a clean end. May be called before the
   * connection exists.
   */
  received(index?: number): Promise<SinkResult>;
}

/** Starts a sink: counts and hashes each connection's bytes, then ends once the client ends. */
export async function startSinkServer(options: TcpServerOptions = {}): Promise<SinkServer> {
  const results: Array<Deferred<SinkResult>> = [];
  const slot = (index: number): Deferred<SinkResult> => (results[index] ??= deferred());
  let accepted = 0;
  const server = await startTcpServer((socket) => {
    const result = slot(accepted++);
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    socket.once('end', () => {
      result.resolve({ bytes, sha256: hash.digest('hex') });
      socket.end();
    });
    // After a clean 'end' this reject is a no-op.
    socket.once('close', () => result.reject(new Error(`sink connection closed after ${bytes} bytes without an end`)));
  }, options);
  return Object.assign(server, { received: (index = 0) => slot(index).promise });
}

/** A TCP server that sends a fixed payload to every connection and then ends its side. */
export interface SourceServer extends TcpServer {
  readonly payload: Buffer;
  /** Hex SHA-256 of `payload`. */
  readonly sha256: string;
}

/**
 * Starts a source: each connection gets `payload(bytes, seed)` from data.ts (bytes a test can
 * rebuild itself) followed by a FIN. What the client sends is read and discarded, so the client
 * may keep writing after the source has ended (half-close).
 */
export async function startSourceServer(bytes: number, seed = 1, options: TcpServerOptions = {}): Promise<SourceServer> {
  const payload = makePayload(bytes, seed);
  const server = await startTcpServer((socket) => {
    socket.resume();
    socket.end(payload);
  }, options);
  return Object.assign(server, { payload, sha256: sha256(payload) });
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: Error): void;
}

// Promise.withResolvers only arrives in Node 22.
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Nobody may be waiting on a connection that fails; that must not become an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/**
 * The client side of an echo through a burrow listener on loopback `port`: sends `data`, reads
 * until as many bytes came back, then ends its side and waits for the close (bounded by
 * `timeoutMs`). Its side stays open until the echo is in, because squid does not carry a
 * half-close (a client FIN tears the whole tunnel down, see helpers/squid.ts) and WebSocket has none.
 */
export async function echoThrough(port: number, data: Buffer, timeoutMs = 60_000): Promise<Buffer> {
  const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let received = 0;
  const timer = setTimeout(() => socket.destroy(new Error(`echo of ${data.length} bytes incomplete after ${timeoutMs} ms (got ${received})`)), timeoutMs);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('connect', () => chunked(data).pipe(socket, { end: false }));
      socket.on('data', (d: Buffer) => {
        chunks.push(d);
        received += d.length;
        if (received >= data.length) socket.end();
      });
      socket.once('close', () => resolve());
    });
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return Buffer.concat(chunks);
}
