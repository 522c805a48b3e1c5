/**
 * Plain HTTP requests to the identity-aware proxy itself (its login API, its routes API), on the
 * same dial path as tunnels (dial.ts): TLS flags, the corporate forward proxy and the time
 * allowed apply to them too. undici does the HTTP; burrow's own connector makes the socket.
 */
import type { Client } from 'undici';
import { importExternal } from '../external.js';
import { formatAuthority, type ProxyEndpoint } from '../target.js';
import { dialProxy } from './dial.js';
import type { RouteOptions } from './route.js';

/**
 * An undici Client for `proxy` whose connections are dialled by {@link dialProxy}. The caller
 * closes it. undici itself is loaded on first use (it stays outside the bundle).
 */
export async function proxyApiClient(proxy: ProxyEndpoint, route: RouteOptions, signal?: AbortSignal): Promise<Client> {
  const { Client } = await importExternal<typeof import('undici')>('undici');
  return new Client(proxy.origin, {
    connect: (_opts, callback) => {
      dialProxy({
        endpoint: proxy,
        alpn: ['http/1.1'],
        // The request is for the proxy itself.
        label: formatAuthority(proxy.host, proxy.port),
        tls: route.tls,
        forward: route.forward,
        deadline: Date.now() + route.connectTimeoutMs,
        signal,
      }).then(
        (socket) => callback(null, socket),
        (error: Error) => callback(error, null),
      );
    },
    headersTimeout: route.connectTimeoutMs,
    bodyTimeout: route.connectTimeoutMs,
  });
}

/** Reads at most `limit` characters of an answer's body (the rest is dropped). */
export async function readBody(body: AsyncIterable<unknown>, limit: number): Promise<{ text: string; cut: boolean }> {
  let text = '';
  for await (const chunk of body) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > limit) return { text: text.slice(0, limit), cut: true };
  }
  return { text, cut: false };
}

export interface ApiGet {
  proxy: ProxyEndpoint;
  route: RouteOptions;
  /** The path and query, e.g. `/.pomerium/api/v1/routes`. */
  path: string;
  /** Sent as `Authorization: Bearer Pomerium-<token>`; none without one. */
  token: string | undefined;
  /** Characters of the body kept; the rest is dropped (`cut`). */
  maxBody: number;
  signal?: AbortSignal | undefined;
}

/** The proxy's answer to an {@link apiGet}: its status, the headers burrow looks at, and the start of its body. */
export interface ApiAnswer {
  status: number;
  location: string | undefined;
  contentType: string | undefined;
  body: string;
  cut: boolean;
}

const header = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/**
 * `GET path` on the proxy's own API, asking for JSON. Socket-level failures come out as dial.ts's
 * BurrowErrors; what undici itself raises (a timeout, a malformed answer, an abort) is the
 * caller's to word.
 */
export async function apiGet(request: ApiGet): Promise<ApiAnswer> {
  const { proxy, route, path, token, maxBody, signal } = request;
  const client = await proxyApiClient(proxy, route, signal);
  // An answer left unread keeps its connection busy: close() would wait for it.
  let unread = true;
  try {
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': route.userAgent };
    if (token !== undefined) headers.authorization = `Bearer Pomerium-${token}`;
    const response = await client.request({ method: 'GET', path, headers, signal });
    const { text, cut } = await readBody(response.body, maxBody);
    unread = cut;
    return { status: response.statusCode, location: header(response.headers.location), contentType: header(response.headers['content-type']), body: text, cut };
  } finally {
    void (unread ? client.destroy() : client.close()).catch(() => {});
  }
}
