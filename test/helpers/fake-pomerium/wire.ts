/** Bytes on the wire: complete HTTP/1.1 answers written by hand, a gentle close, the upstream dial. */
import { STATUS_CODES } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';

/**
 * Writes a complete HTTP/1.1 answer to a CONNECT (or upgrade) that is not let through, then
 * ends the connection as Pomerium does.
 */
export function writeAnswer(socket: Socket, status: number, headers: Record<string, string> = {}, body?: string): void {
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
export function endSoon(socket: Socket, data: Buffer | string): void {
  socket.end(data);
  socket.resume();
  socket.setTimeout(1000, () => socket.destroy());
}

/** Opens a half-open-capable TCP connection to the upstream, or rejects after `timeoutMs`. */
export function dial(host: string, port: number, timeoutMs: number, track: (socket: Socket) => void): Promise<Socket> {
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
