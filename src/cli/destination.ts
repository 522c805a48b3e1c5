/**
 * Turns the `tcp` command's destination argument (and `--pomerium-url`) into where to connect:
 * the proxy endpoint and the authority to ask it for. The forms and the proxy each one implies
 * follow pomerium-cli's `tunnel.ParseURLs`, so existing ssh configs keep working:
 *
 *   host:port                           proxy https://host:443,       CONNECT host:port
 *   tcp+https://host:port               proxy https://host:443,       CONNECT host:port
 *   tcp+https://proxy[:port]/host:port  proxy https://proxy[:port],   CONNECT host:port
 *   wss://host[:port]/path              WebSocket upgrade to that URL (ws:// for loopback tests)
 *
 * `burrow udp` takes the same forms with `udp+https://` (CONNECT-UDP to host:port).
 */
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';
import { type Authority, formatAuthority, type ProxyEndpoint, proxyEndpoint, type Target } from '../target.js';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** What a destination is carried as: a TCP stream (`burrow tcp`) or UDP datagrams (`burrow udp`). */
export type DestinationFamily = 'tcp' | 'udp';

function invalid(input: string, reason: string, family: DestinationFamily = 'tcp'): UsageError {
  return new UsageError(text.invalidDestination(input, reason), {
    code: 'BURROW_INVALID_DESTINATION',
    hint: family === 'udp' ? text.udpDestinationForms : text.destinationForms,
  });
}

/** Parses a decimal TCP port, or returns undefined. */
export function parsePort(value: string, min = 1): number | undefined {
  if (!/^[0-9]{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port >= min && port <= 65535 ? port : undefined;
}

/** True for a DNS name (trailing dot allowed), as destinations take them; IP addresses are not. */
export function isHostName(host: string): boolean {
  return HOSTNAME.test(host) && !/^[0-9.]+$/.test(host) && isIP(host) === 0;
}

/** Validates a host as a DNS name, an IPv4 address, or an IPv6 address (brackets stripped). */
function checkHost(host: string): string | undefined {
  if (host === '') return 'the host is empty';
  if (isIP(host) === 6) return undefined;
  if (isIP(host) === 4) return undefined;
  if (/^[0-9.]+$/.test(host)) return `"${host}" is not a valid IPv4 address`;
  if (!HOSTNAME.test(host)) return `"${host}" is not a valid host name`;
  return undefined;
}

/**
 * Host names and IPv6 hex digits are case-insensitive, so they are lowercased (one cached sign-in
 * per proxy, whatever the spelling); an IPv6 zone (`fe80::1%eth0`) names an interface, and
 * interface names are not.
 */
function normalizeHost(host: string): string {
  const zone = host.indexOf('%');
  return zone < 0 ? host.toLowerCase() : `${host.slice(0, zone).toLowerCase()}${host.slice(zone)}`;
}

/**
 * Splits `host:port` / `[v6]:port`. Returns a reason string on failure so each caller wraps it
 * in its own error. `minPort` is 0 for listen addresses (any free port).
 */
export function splitHostPort(input: string, minPort = 1): { host: string; port: number } | string {
  let host: string;
  let portText: string;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0) return 'the IPv6 address has no closing "]"';
    host = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (rest === '') return 'the port is missing (add ":PORT", for example ":22")';
    if (!rest.startsWith(':')) return `unexpected "${rest}" after the IPv6 address`;
    portText = rest.slice(1);
    if (isIP(host) !== 6) return `"${host}" is not a valid IPv6 address`;
  } else {
    const colon = input.lastIndexOf(':');
    if (colon < 0) return 'the port is missing (add ":PORT", for example ":22")';
    host = input.slice(0, colon);
    portText = input.slice(colon + 1);
    if (host.includes(':')) return 'an IPv6 address must be written in brackets, for example [::1]:22';
  }
  if (portText === '') return 'the port is missing (add ":PORT", for example ":22")';
  const port = parsePort(portText, minPort);
  if (port === undefined) return `the port "${portText}" is not a number from ${minPort} to 65535`;
  const bad = checkHost(host);
  if (bad) return bad;
  return { host: normalizeHost(host).replace(/\.$/, ''), port };
}

/** A proxy's `host[:port]`: unlike a destination, the port may be left out. */
function proxyHostPort(input: string): { host: string; port: number | undefined } | string {
  if (input.startsWith('[') ? input.endsWith(']') : !input.includes(':')) {
    const host = input.startsWith('[') ? input.slice(1, -1) : input;
    return checkHost(host) ?? { host: normalizeHost(host), port: undefined };
  }
  return splitHostPort(input);
}

function authority(input: string, hostPort: string, family: DestinationFamily = 'tcp'): Authority {
  const parts = splitHostPort(hostPort);
  if (typeof parts === 'string') throw invalid(input, parts, family);
  return { ...parts, authority: formatAuthority(parts.host, parts.port) };
}

/** WHATWG URL accepts port 0; nothing can be dialled there. */
const PORT_ZERO = 'the port must be from 1 to 65535';

/** Parses a `scheme://host[:port]` URL's host part, rejecting the things WHATWG URL tolerates. */
function urlHostPort(url: URL): { host: string; port: number | undefined } {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { host: normalizeHost(host), port: url.port === '' ? undefined : Number(url.port) };
}

/**
 * Parses the destination argument, then applies `--pomerium-url` if given. `udp` takes the
 * `udp+https://` forms (Pomerium's UDP routes) where `tcp` takes `tcp+https://` and `wss://`.
 */
export function parseTarget(input: string, pomeriumUrl?: string, family: DestinationFamily = 'tcp'): Target {
  const fail = (reason: string) => invalid(input, reason, family);
  const trimmed = input.trim();
  if (trimmed === '') throw fail('it is empty');
  let target: Target;
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(trimmed);
  if (!schemeMatch) {
    const dest = authority(input, trimmed, family);
    target = { destination: dest, proxy: proxyEndpoint('https', dest.host, undefined) };
  } else {
    const scheme = schemeMatch[1]!.toLowerCase();
    if (family === 'tcp' && (scheme === 'wss' || scheme === 'ws')) {
      if (pomeriumUrl !== undefined) {
        throw new UsageError(text.conflictingFlags('a wss:// destination', '--pomerium-url'), { hint: text.websocketPomeriumUrlHint });
      }
      return parseWebSocketTarget(input, trimmed, scheme);
    }
    const [secure, plain] = family === 'udp' ? ['udp+https', 'udp+http'] : ['tcp+https', 'tcp+http'];
    if (scheme !== secure && scheme !== plain) {
      const other = family === 'udp' ? /^(tcp\+https?|wss?)$/.test(scheme) : /^udp\+https?$/.test(scheme);
      throw fail(other ? text.otherFamilyScheme(schemeMatch[1]!, family === 'udp' ? 'tcp' : 'udp') : `the scheme "${schemeMatch[1]}://" is not supported`);
    }
    const proxyScheme = scheme === secure ? 'https' : 'http';
    const rest = trimmed.slice(schemeMatch[0].length);
    const slash = rest.indexOf('/');
    const hostPart = slash < 0 ? rest : rest.slice(0, slash);
    const pathPart = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/$/, '');
    if (/[?#@]/.test(rest)) throw fail('user names, queries and fragments are not allowed');
    if (hostPart === '') throw fail('the host is empty');
    if (pathPart === '') {
      // scheme://host:port: the proxy is the destination's host on the default port.
      const dest = authority(input, hostPart, family);
      target = { destination: dest, proxy: proxyEndpoint(proxyScheme, dest.host, undefined) };
    } else {
      if (pathPart.includes('/')) throw fail('the path must be a single "host:port"');
      const proxy = proxyHostPort(hostPart);
      if (typeof proxy === 'string') throw fail(`proxy: ${proxy}`);
      target = { destination: authority(input, pathPart, family), proxy: proxyEndpoint(proxyScheme, proxy.host, proxy.port) };
    }
  }
  if (pomeriumUrl !== undefined) target = { ...target, proxy: parseProxyUrl(pomeriumUrl, '--pomerium-url') };
  return target;
}

/** `wss://host[:port]/path`: the gateway is the URL's host; the path and query are kept. */
function parseWebSocketTarget(input: string, trimmed: string, scheme: 'wss' | 'ws'): Target {
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw invalid(input, 'it is not a valid URL');
  }
  if (url.username || url.password) throw invalid(input, 'user names are not allowed');
  if (url.hash) throw invalid(input, 'fragments are not allowed');
  const { host, port } = urlHostPort(url);
  const bad = checkHost(host);
  if (bad) throw invalid(input, bad);
  if (port === 0) throw invalid(input, PORT_ZERO);
  const proxy = proxyEndpoint(scheme === 'wss' ? 'https' : 'http', host, port);
  const href = `${scheme}://${formatAuthority(host, proxy.port)}${url.pathname}${url.search}`;
  return { proxy, destination: { host, port: proxy.port, authority: href }, websocket: { url: href } };
}

/** Parses a proxy URL such as `--pomerium-url https://proxy.corp:8443`: scheme, host, port, nothing more. */
export function parseProxyUrl(input: string, what: string): ProxyEndpoint {
  return parseProxy(input, what, false);
}

/**
 * The proxy `burrow login` names: a proxy URL, a bare host (`proxy.corp.example.com`,
 * `proxy:8443`; https is assumed) or the address of any page behind the proxy
 * (`https://proxy/some/page?x`), of which only the origin counts.
 */
export function parseProxyOrigin(input: string, what: string): ProxyEndpoint {
  return parseProxy(input, what, true);
}

/** Both proxy forms; `page` takes a bare host and ignores a path, query and fragment. */
function parseProxy(input: string, what: string, page: boolean): ProxyEndpoint {
  const fail = (reason: string) =>
    new UsageError(text.invalidUrl(what, input, reason), { code: 'BURROW_INVALID_URL', hint: page ? text.proxyOriginForm : text.proxyUrlForm });
  const trimmed = input.trim();
  if (trimmed === '') throw fail('it is empty');
  const schemed = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(trimmed);
  if (!schemed && !page) throw fail('it has no scheme (start it with https://)');
  let url: URL;
  try {
    url = new URL(schemed ? trimmed : `https://${trimmed}`);
  } catch {
    throw fail(schemed ? 'it is not a valid URL' : 'it is neither a host name nor a URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw fail(`the scheme "${url.protocol}//" is not supported`);
  if (url.username || url.password) throw fail('credentials in the URL are not allowed');
  if (!page && url.pathname !== '/' && url.pathname !== '') throw fail('it must not have a path');
  if (!page && (url.search || url.hash)) throw fail('it must not have a query or fragment');
  const { host, port } = urlHostPort(url);
  const bad = checkHost(host);
  if (bad) throw fail(bad);
  if (port === 0) throw fail(PORT_ZERO);
  return proxyEndpoint(url.protocol === 'https:' ? 'https' : 'http', host, port);
}
