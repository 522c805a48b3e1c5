/**
 * Plain HTTP requests (neither CONNECT nor an upgrade): recorded, answered by the `respond`
 * hook if it wants to, else (outside /.pomerium/) by an HTTPS route (http-route.ts), else
 * /healthz, /.pomerium/api/v1/whoami, /.pomerium/api/v1/routes, the sign-in endpoints
 * (sign-in.ts) or 404.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { countStatus, type ProxyContext } from './context.js';
import { cannedAnswer } from './faults.js';
import { serveHttpRoute } from './http-route.js';
import { type Send, serveSignIn } from './sign-in.js';
import { readToken } from './tokens.js';
import { endSoon } from './wire.js';

export function handleRequest(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse): void {
  const method = req.method ?? 'GET';
  const target = req.url ?? '/';
  ctx.recordRequest(method, target, req.headers);
  const { token, claims } = readToken(req.headers, ctx.tokens);
  const send: Send = (status, body, headers = {}) => {
    ctx.record(method, target, status, token, claims);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };

  const raw = (data: Buffer | string): void => {
    ctx.record(method, target, 0, token, claims);
    endSoon(req.socket, data);
  };
  if (cannedAnswer(ctx.settings, { method, url: target, headers: req.headers }, raw, (status, headers, body) => send(status, body ?? '', headers))) return;

  let requestUrl: URL;
  try {
    requestUrl = new URL(target, ctx.url);
  } catch {
    return send(400, 'bad request target\n'); // a throw here would crash the whole test run
  }
  // Pomerium serves its own paths on every route's host.
  const route = requestUrl.pathname.startsWith('/.pomerium/') ? undefined : ctx.routes.http(req.headers.host, requestUrl.pathname);
  if (route) return serveHttpRoute(ctx, req, res, route, `${requestUrl.pathname}${requestUrl.search}`);
  const endpoint = `${method} ${requestUrl.pathname}`;
  switch (endpoint) {
    case 'GET /healthz':
      return send(200, 'ok');
    case 'GET /.pomerium/api/v1/whoami':
      return claims ? send(200, JSON.stringify(claims), { 'Content-Type': 'application/json' }) : send(401, 'not signed in\n');
    case 'GET /.pomerium/api/v1/routes': {
      // Pomerium (v0.33 on): 302 to sign in without a token, 401 for a token it does not accept.
      const answer = (status: number, body: string, headers?: Record<string, string>) => {
        countStatus(ctx.stats.routesRequests, status);
        send(status, body, headers);
      };
      if (ctx.settings.routesApi === false) return answer(404, 'not found\n');
      if (token === undefined) return answer(302, 'sign in\n', { Location: `${ctx.url}/.pomerium/sign_in` });
      if (!claims) return answer(401, JSON.stringify({ error: 'invalid token' }), { 'Content-Type': 'application/json' });
      // The list a test gave (any JSON, hostile strings included), else one entry per route.
      const routes =
        ctx.settings.portalRoutes ??
        ctx.routes.list().map((route, i) => ({
          id: `route-${i + 1}`,
          name: new URL(route.from).host,
          type: route.from.startsWith('tcp+') ? 'tcp' : route.from.startsWith('udp+') ? 'udp' : 'http',
          from: route.from,
        }));
      return answer(200, JSON.stringify({ routes }), { 'Content-Type': 'application/json' });
    }
    default:
      if (!serveSignIn(ctx, endpoint, requestUrl.searchParams, req, send)) send(404, 'not found\n');
  }
}
