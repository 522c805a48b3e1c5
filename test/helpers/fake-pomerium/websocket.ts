/**
 * WebSocket tunnels (docs/protocol.md, "WebSocket transport"): an HTTP/1.1 Upgrade goes through
 * the same preamble as CONNECT (preamble.ts), plus the handshake checks; then ws completes the
 * handshake and binary messages are spliced to the route's upstream. Also the `wsAutoPong` and
 * `wsIdleTimeoutMs` behaviours, and the record of how each tunnel closed.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import type { ProxyContext } from './context.js';
import type { FakeWsClosure } from './index.js';
import { admitTunnel, type Answer, type Destination } from './preamble.js';

export interface WebSocketTunnels {
  handleUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void>;
  /** Drops every open WebSocket tunnel. */
  terminateAll(): void;
  /** Closes the WebSocket server for good. */
  close(): void;
}

export function createWebSocketTunnels(ctx: ProxyContext): WebSocketTunnels {
  const webSockets = new Set<WebSocket>();
  // noServer: upgrades are answered (or refused) by handleUpgrade below, which hands only the
  // accepted ones to ws. No compression: Pomerium tunnels carry opaque bytes.
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, autoPong: ctx.settings.wsAutoPong ?? true });

  /**
   * An HTTP/1.1 Upgrade: the same checks as CONNECT, in the same order (canned answer, route,
   * sign-in, policy, upstream), then the WebSocket handshake and a splice of binary messages to
   * the route's upstream.
   */
  async function handleUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): Promise<void> {
    ctx.stats.upgrades++;
    const target = req.url ?? '/';
    const method = req.method ?? 'GET';
    const admitted = await admitTunnel(ctx, socket, {
      headers: req.headers,
      requestMethod: 'GET',
      eventMethod: method,
      target,
      hook: { method, url: target, headers: req.headers, upgrade: true },
      byStatus: ctx.stats.upgradesByStatus,
      resolve: (): (Destination & { path: string }) | Answer => {
        let path: string;
        try {
          path = new URL(target, ctx.url).pathname;
        } catch {
          return { status: 400 };
        }
        // Checked before anything is dialled, so that ws's own handshake cannot fail afterwards.
        if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') return { status: 400, headers: {}, body: 'only WebSocket upgrades are served\n' };
        if (!/^[+/0-9A-Za-z]{22}==$/.test(req.headers['sec-websocket-key'] ?? '') || !['8', '13'].includes(req.headers['sec-websocket-version'] ?? '')) {
          return { status: 400, headers: {}, body: 'bad WebSocket handshake\n' };
        }
        return { route: ctx.routes.ws(path), signInTarget: `https://${req.headers.host ?? ctx.urlHost}${path}`, path };
      },
    });
    if (!admitted) return;
    const { upstream, destination, count } = admitted;
    wss.handleUpgrade(req, socket, head, (ws) => {
      count(101);
      spliceWebSocket(ws, upstream, destination.path, ctx.openTunnel());
    });
  }

  /**
   * Joins an accepted WebSocket and the upstream TCP socket. Messages (binary or not) go to the
   * upstream as bytes; upstream bytes go out as binary messages. Backpressure both ways: the
   * WebSocket is paused while the upstream's write buffer is full, the upstream is paused while
   * `bufferedAmount` is high. Upstream EOF -> close 1000 (after the queued messages); the
   * WebSocket closing -> upstream.end(); an error on either side destroys both.
   */
  function spliceWebSocket(ws: WebSocket, upstream: Socket, path: string, onClosed: () => void): void {
    const HIGH = 1024 * 1024;
    const LOW = 256 * 1024;
    webSockets.add(ws);
    upstream.setNoDelay(true);
    let closedBy: FakeWsClosure['by'] | undefined;
    let open = 2;
    const closed = (): void => {
      if (--open === 0) onClosed();
    };

    let idle: NodeJS.Timeout | undefined;
    if (ctx.settings.wsIdleTimeoutMs) {
      const ms = ctx.settings.wsIdleTimeoutMs;
      idle = setTimeout(() => {
        closedBy ??= 'proxy';
        ws.close(1001, 'idle timeout');
      }, ms);
      idle.unref();
    }
    const seen = (): void => void idle?.refresh();

    let wsPaused = false;
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      seen();
      const chunk = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      // Messages already parsed still arrive after pause(); they are few and simply queued.
      if (upstream.writable && !upstream.write(chunk) && !wsPaused) {
        wsPaused = true;
        ws.pause();
        upstream.once('drain', () => {
          wsPaused = false;
          ws.resume();
        });
      }
    });
    ws.on('ping', () => {
      seen();
      ctx.stats.pingsReceived++;
    });
    ws.on('pong', seen);
    ws.on('error', () => {
      ws.terminate();
      upstream.destroy();
    });
    ws.once('close', (code: number) => {
      clearTimeout(idle);
      webSockets.delete(ws);
      ctx.wsClosures.push({ path, code, by: closedBy ?? (code === 1006 ? 'abrupt' : 'client') });
      // Nothing can reach the client any more: finish writing to the upstream, discard what it
      // still sends, and do not wait for it forever.
      upstream.end();
      upstream.resume();
      upstream.setTimeout(5000, () => upstream.destroy());
      closed();
    });

    // Each send's callback runs once its frame went to the socket, so one of them sees the
    // buffer fall below LOW after a pause.
    let upstreamPaused = false;
    upstream.on('data', (chunk: Buffer) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(chunk, { binary: true }, () => {
        if (upstreamPaused && ws.bufferedAmount < LOW) {
          upstreamPaused = false;
          upstream.resume();
        }
      });
      if (!upstreamPaused && ws.bufferedAmount > HIGH) {
        upstreamPaused = true;
        upstream.pause();
      }
    });
    upstream.once('end', () => {
      closedBy ??= 'proxy';
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'upstream closed');
    });
    upstream.on('error', () => {
      upstream.destroy();
      ws.terminate();
    });
    upstream.once('close', closed);
  }

  return {
    handleUpgrade,
    terminateAll() {
      for (const ws of webSockets) ws.terminate();
    },
    close() {
      wss.close();
    },
  };
}
