/**
 * CONNECT tunnels (docs/protocol.md, "The tunnel"): after the shared preamble (preamble.ts),
 * `200 Connection established` (with the `greeting` fault, if any) and a byte splice to the
 * route's upstream that carries half-closes.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyContext } from './context.js';
import { admitTunnel } from './preamble.js';

export async function handleConnect(ctx: ProxyContext, req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
  ctx.stats.connects++;
  // Pomerium tunnels are raw TCP, so they must carry half-closes: keep writing after the
  // client's FIN. The http server's TLS sockets do not allow that by default.
  socket.allowHalfOpen = true;
  const authority = (req.url ?? '').toLowerCase();
  const admitted = await admitTunnel(ctx, socket, {
    headers: req.headers,
    requestMethod: 'CONNECT',
    eventMethod: 'CONNECT',
    target: authority,
    hook: { method: 'CONNECT', url: req.url ?? '', headers: req.headers },
    byStatus: ctx.stats.connectsByStatus,
    resolve: () => ({ route: ctx.routes.tcp(authority), signInTarget: `https://${authority}/` }),
  });
  if (!admitted) return;
  const { upstream, count } = admitted;
  count(200);
  const answer = Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n');
  socket.write(ctx.settings.greeting ? Buffer.concat([answer, ctx.settings.greeting]) : answer);
  if (head.length > 0) upstream.write(head);
  splice(socket, upstream, ctx.openTunnel());
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
