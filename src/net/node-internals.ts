/**
 * The one place burrow reaches past a documented API, with the versions it was checked on.
 * Each use has a documented fallback, taken when the internal is not there.
 *
 * Checked with Node v20.20.2 (and the v22 line's SecureContext, which has the same method).
 */
import net from 'node:net';
import tls from 'node:tls';

/**
 * Adds `pems` to the default trust of a fresh context. The documented `ca` option would replace
 * Node's bundled roots (and re-parsing all of them as PEM costs ~20 ms of start-up), so the
 * extra CAs go through the native context's `addCACert`, which is how Node's own
 * `createSecureContext` adds each `ca` entry. Returns false when there is no such method (another
 * runtime): the caller then uses the documented form.
 */
export function addCaCertificates(context: tls.SecureContext, pems: readonly string[]): boolean {
  const native = (context as unknown as { context?: { addCACert?: (pem: string) => void } }).context;
  if (typeof native?.addCACert !== 'function') return false;
  for (const pem of pems) native.addCACert(pem);
  return true;
}

/** The symbols under which a net.Socket keeps its `onread` buffer, callback and buffer generator. */
interface ReadBufferKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

let readBufferKeys: ReadBufferKeys | null | undefined;

/** Found once on a socket built with the documented `onread` option; null if they are not there. */
function findReadBufferKeys(): ReadBufferKeys | null {
  const buffer = Buffer.alloc(1);
  const callback = () => true;
  // `onread` is documented for `new net.Socket` too, though Node 20's types list it for `net.connect` only.
  const probe = new net.Socket({ onread: { buffer, callback } } as net.SocketConstructorOpts);
  const own = Object.getOwnPropertySymbols(probe);
  const find = (description: string, value?: unknown) =>
    own.find((s) => s.description === description && (value === undefined || (probe as unknown as Record<symbol, unknown>)[s] === value));
  const keys = { buffer: find('kBuffer', buffer), callback: find('kBufferCb', callback), generator: find('kBufferGen') };
  probe.destroy();
  return keys.buffer && keys.callback && keys.generator ? (keys as ReadBufferKeys) : null;
}

/**
 * Makes a connected socket (TLS included) read into buffers that `buffer()` hands out instead
 * of a new buffer per read, as the documented `onread` option of `net.connect` does:
 * `callback(n, buf)` gets the first `n` bytes of `buf`, and its `false` stops reading until
 * `socket.resume()`. No 'data' events follow; 'end', 'error' and 'close' do. `buffer()` is asked
 * again after each read and may hand out the same buffer once nothing refers to its bytes.
 *
 * Why not the option itself: `tls.connect` ignores `onread` when it is given a socket, which
 * burrow does (a half-open TCP socket, or a forward proxy's tunnel). So this sets what the option
 * sets, on the socket's own keys, and points its handle at the first buffer (`useUserBuffer`, the
 * call Node makes for the option). Returns false, changing nothing, when the keys or the handle's
 * method are not there, or the socket still has buffered bytes: the caller then reads as usual.
 */
export function readIntoBuffers(socket: net.Socket, buffer: () => Buffer, callback: (n: number, buf: Buffer) => boolean): boolean {
  if (readBufferKeys === undefined) readBufferKeys = findReadBufferKeys();
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: (buf: Uint8Array) => void } })._handle;
  if (!readBufferKeys || typeof handle?.useUserBuffer !== 'function' || socket.readableLength > 0 || socket.destroyed) return false;
  const target = socket as unknown as Record<symbol, unknown>;
  const first = buffer();
  target[readBufferKeys.buffer] = first;
  target[readBufferKeys.callback] = callback;
  target[readBufferKeys.generator] = buffer;
  handle.useUserBuffer(first);
  return true;
}
