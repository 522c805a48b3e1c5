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
