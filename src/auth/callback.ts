/**
 * The one-shot loopback server the browser is sent back to after sign-in (docs/protocol.md "Sign-in").
 * It listens on 127.0.0.1, a random port, a random unguessable path; it accepts exactly one GET
 * on that path carrying `pomerium_jwt`, from a request addressed to loopback (a page on another
 * site cannot make a browser send that Host: DNS rebinding), and then closes. Anything else gets
 * a 404 and is otherwise ignored.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JWT_SHAPE } from './jwt.js';

export interface CallbackServer {
  /** The loopback URL to hand to the proxy as `pomerium_redirect_uri`. */
  readonly url: string;
  /** Resolves with the token from the one accepted request. */
  readonly token: Promise<string>;
  /** Stops listening and drops every connection; idempotent. */
  close(): void;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function successPage(proxy: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>burrow: signed in</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>You are signed in</h1>
<p>burrow signed in to <code>${escapeHtml(proxy)}</code>. You can close this tab and go back to the terminal.</p>
</body></html>
`;
}

/** Accepts `127.0.0.1:PORT`, `localhost:PORT` and `[::1]:PORT` as the Host of the callback. */
function loopbackHost(host: string | undefined, port: number): boolean {
  return host === `127.0.0.1:${port}` || host === `localhost:${port}` || host === `[::1]:${port}`;
}

export async function startCallbackServer(proxyOrigin: string): Promise<CallbackServer> {
  const path = `/burrow/callback/${randomBytes(18).toString('base64url')}`;
  let accept!: (token: string) => void;
  const token = new Promise<string>((resolve) => (accept = resolve));
  let done = false;
  // Set once listening; read from here because server.address() is null once closed.
  let port = 0;
  // Room for the long tokens of users in many groups (Node's default is 16 KiB of request head).
  const server = http.createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    res.setHeader('Connection', 'close');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    // An absolute-form target WHATWG URL rejects ("GET http://[ HTTP/1.1") must
    // not throw in here, which would be an uncaught exception ending the sign-in.
    let url: URL | undefined;
    try {
      url = new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      url = undefined;
    }
    const jwt = url?.searchParams.get('pomerium_jwt') ?? '';
    if (done || !url || req.method !== 'GET' || url.pathname !== path || !loopbackHost(req.headers.host, port) || !JWT_SHAPE.test(jwt)) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    done = true;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(successPage(proxyOrigin), () => close());
    accept(jwt);
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    server.close();
    server.closeAllConnections();
  };
  return { url: `http://127.0.0.1:${port}${path}`, token, close };
}
