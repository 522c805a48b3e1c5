/**
 * HTTPS routes (`from: https://k8s.corp.test`, `to: http://127.0.0.1:PORT`): a plain request is
 * checked as Pomerium checks one, then forwarded to the route's upstream over plain HTTP.
 *
 * The identity is read from `Authorization: Pomerium <jwt>`, `Authorization: Bearer
 * Pomerium-<jwt>` (what kubectl sends for an exec credential `Pomerium-<jwt>`),
 * `X-Pomerium-Authorization: <jwt>` (or `Pomerium <jwt>`), or the `_pomerium` cookie. Without a
 * valid one: 401 when a token was presented (Pomerium answers an invalid bearer token so) or
 * the client is not a browser, a 302 to the sign-in page for a browser (`Accept: text/html`).
 * A user the route's policy does not allow: 403. The upstream gets the request without the
 * user's token, with `X-Pomerium-Jwt-Assertion` set to it (Pomerium signs a fresh assertion;
 * the same claims do here), its Host rewritten to the upstream's, and, for a route with
 * `kubernetesServiceAccountToken`, that token and `Impersonate-User`/`Impersonate-Group`.
 * An upstream that cannot be reached: 503.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { countStatus, type ProxyContext } from './context.js';
import { type ParsedRoute, policy } from './policy.js';
import { tokenFrom } from './tokens.js';

/** Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** The token of a plain request, from any of the places Pomerium reads one. */
export function requestToken(headers: IncomingHttpHeaders): string | undefined {
  const fromAuthorization = tokenFrom(headers);
  if (fromAuthorization !== undefined) return fromAuthorization;
  const header = headers['x-pomerium-authorization'];
  if (typeof header === 'string' && header.trim() !== '') return header.trim().replace(/^Pomerium\s+/, '');
  const cookie = /(?:^|;\s*)_pomerium=([^;]+)/.exec(headers.cookie ?? '')?.[1];
  return cookie === undefined ? undefined : decodeURIComponent(cookie.trim());
}

/** The request's headers for the upstream: without the user's token and hop-by-hop headers. */
function upstreamHeaders(headers: IncomingHttpHeaders, route: ParsedRoute): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const named = new Set((headers.connection ?? '').split(',').map((name) => name.trim().toLowerCase()));
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || name === 'authorization' || name === 'x-pomerium-authorization') continue;
    if (name === 'cookie') {
      const rest = String(value)
        .split(/;\s*/)
        .filter((part) => part !== '' && !part.startsWith('_pomerium='))
        .join('; ');
      if (rest !== '') out.cookie = rest;
      continue;
    }
    out[name] = value;
  }
  out.host = `${route.toHost.includes(':') ? `[${route.toHost}]` : route.toHost}:${route.toPort}`;
  return out;
}

/** Checks and forwards one request on `route`; `target` is its path and query. */
export function serveHttpRoute(ctx: ProxyContext, req: IncomingMessage, res: ServerResponse, route: ParsedRoute, target: string): void {
  const method = req.method ?? 'GET';
  const token = requestToken(req.headers);
  const claims = token === undefined ? null : ctx.tokens.verifyToken(token);
  const answer = (status: number, body: string, headers: Record<string, string> = {}): void => {
    countStatus(ctx.stats.httpRouteRequests, status);
    ctx.record(method, target, status, token, claims);
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
    req.resume();
  };
  const browser = (req.headers.accept ?? '').includes('text/html');
  const unauthenticated = token === undefined && browser ? 302 : 401;
  const refusal = policy(route, claims, unauthenticated, () => ctx.signInUrl(`https://${req.headers.host ?? ctx.urlHost}${target}`));
  if (refusal) return answer(refusal.status, refusal.status === 403 ? 'access denied\n' : 'unauthorized\n', refusal.headers);

  const path = route.prefix === undefined ? target : `/${target.slice(route.prefix.replace(/\/$/, '').length).replace(/^\//, '')}`;
  const headers = upstreamHeaders(req.headers, route);
  if (claims && token !== undefined) {
    headers['x-pomerium-jwt-assertion'] = token;
    if (route.kubernetesServiceAccountToken !== undefined) {
      headers.authorization = `Bearer ${route.kubernetesServiceAccountToken}`;
      headers['impersonate-user'] = claims.email;
      if (Array.isArray(claims.groups)) headers['impersonate-group'] = claims.groups.map(String);
    }
  }
  const upstream = httpRequest({ host: route.toHost, port: route.toPort, method, path, headers, agent: false, timeout: ctx.settings.upstreamConnectTimeoutMs });
  upstream.on('socket', (socket) => ctx.track(socket));
  upstream.once('timeout', () => upstream.destroy(new Error('upstream timed out')));
  upstream.once('error', () => {
    if (!res.headersSent) answer(503, 'upstream unavailable\n');
    else res.destroy();
  });
  upstream.once('response', (answerFromUpstream) => {
    const status = answerFromUpstream.statusCode ?? 502;
    countStatus(ctx.stats.httpRouteRequests, status);
    ctx.record(method, target, status, token, claims);
    const back: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(answerFromUpstream.headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) back[name] = value;
    res.writeHead(status, back);
    answerFromUpstream.pipe(res);
  });
  req.pipe(upstream);
}
