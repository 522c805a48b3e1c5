/**
 * Which corporate forward proxy (if any) stands between us and the identity-aware proxy.
 * `--proxy <url>` wins, `--no-proxy` turns it off; otherwise the environment as curl reads it:
 * `https_proxy`/`HTTPS_PROXY` for an https identity proxy (`http_proxy`/`HTTP_PROXY` for an
 * http one), then `all_proxy`/`ALL_PROXY`, lowercase first; `no_proxy`/`NO_PROXY` lists the
 * hosts to reach directly. Like curl there is no implicit bypass for localhost.
 *
 * NO_PROXY is matched here rather than by undici's EnvHttpProxyAgent: that matcher is internal
 * to the agent (we need a yes/no for our own CONNECT chain) and it has no CIDR support.
 */
import { BlockList, isIP } from 'node:net';
import type { ProxyEndpoint } from '../target.js';
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';

export interface ForwardProxy {
  scheme: 'http' | 'https';
  host: string;
  port: number;
  /** `scheme://host:port` without credentials: the only form ever shown. */
  origin: string;
  /** `Basic …` from the URL's percent-decoded userinfo, sent only to the forward proxy. */
  authorization: string | undefined;
}

export interface ProxySettingValues {
  /** `--proxy <url>`; commander sets false for `--no-proxy`. */
  proxy?: string | false | undefined;
}

/** Parses a forward proxy URL (`http://user:pass@host:port`); `source` names it in errors. */
export function parseForwardProxy(value: string, source: string): ForwardProxy {
  // The URL may hold a password: errors show the source and the reason, never the value.
  const fail = (reason: string) => new UsageError(text.invalidForwardProxy(source, reason), { code: 'BURROW_INVALID_URL', hint: text.forwardProxyForm });
  const trimmed = value.trim();
  // curl accepts a bare host:port and assumes http://.
  const withScheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw fail('it is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw fail(`the scheme "${url.protocol}//" is not supported (use http:// or https://)`);
  if (url.hostname === '') throw fail('the host is empty');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname.toLowerCase();
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const port = url.port === '' ? (scheme === 'https' ? 443 : 80) : Number(url.port);
  // WHATWG URL accepts port 0; nothing can be dialled there.
  if (port === 0) throw fail('the port must be from 1 to 65535');
  let authorization: string | undefined;
  if (url.username || url.password) {
    try {
      const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      authorization = `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
    } catch {
      throw fail('its user name or password is not valid percent-encoding');
    }
  }
  const shown = isIP(host) === 6 ? `[${host}]` : host;
  return { scheme, host, port, origin: `${scheme}://${shown}:${port}`, authorization };
}

/** One NO_PROXY entry matched against a host and port, curl-style. */
function matchesEntry(rawEntry: string, host: string, port: number): boolean {
  let entry = rawEntry.trim().toLowerCase();
  if (entry === '') return false;
  if (entry === '*') return true;
  // Optional :port (also after a bracketed IPv6 address).
  let entryPort: number | undefined;
  const portMatch = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry);
  if (portMatch) {
    entry = portMatch[1]!;
    entryPort = Number(portMatch[2]);
  }
  if (entryPort !== undefined && entryPort !== port) return false;
  if (entry.startsWith('[') && entry.endsWith(']')) entry = entry.slice(1, -1);
  const slash = entry.indexOf('/');
  if (slash > 0) {
    const network = entry.slice(0, slash);
    const prefix = entry.slice(slash + 1);
    // "10.0.0.0/" must not read as /0 (Number('') is 0): that would bypass the proxy for everything.
    if (!/^[0-9]{1,3}$/.test(prefix)) return false;
    const bits = Number(prefix);
    const family = isIP(network);
    const hostFamily = isIP(host);
    if (!family || family !== hostFamily || !Number.isInteger(bits)) return false;
    const list = new BlockList();
    try {
      list.addSubnet(network, bits, family === 6 ? 'ipv6' : 'ipv4');
    } catch {
      return false;
    }
    return list.check(host, family === 6 ? 'ipv6' : 'ipv4');
  }
  if (isIP(entry) || isIP(host)) return entry === host;
  const domain = entry.replace(/^\*?\./, '');
  return host === domain || host.endsWith(`.${domain}`);
}

/** True when `NO_PROXY`-style `list` says to reach host:port directly. */
export function bypassesProxy(list: string, host: string, port: number): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return list.split(/[\s,]+/).some((entry) => matchesEntry(entry, h, port));
}

function firstSet(env: NodeJS.ProcessEnv, names: string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') return { name, value };
  }
  return undefined;
}

/** The forward proxy to reach `target` through, or undefined to connect directly. */
export function forwardProxyFor(target: ProxyEndpoint, values: ProxySettingValues, env: NodeJS.ProcessEnv): ForwardProxy | undefined {
  if (values.proxy === false) return undefined;
  if (typeof values.proxy === 'string') return parseForwardProxy(values.proxy, '--proxy');
  const noProxy = firstSet(env, ['no_proxy', 'NO_PROXY']);
  if (noProxy && bypassesProxy(noProxy.value, target.host, target.port)) return undefined;
  const names = target.scheme === 'https' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY'];
  const chosen = firstSet(env, [...names, 'all_proxy', 'ALL_PROXY']);
  return chosen ? parseForwardProxy(chosen.value, chosen.name) : undefined;
}
