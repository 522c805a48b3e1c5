/**
 * `burrow routes <proxy>`: the routes the proxy's routes API lists for you (Pomerium v0.29 on),
 * as a table on stdout (name, type, from, and the burrow command that reaches each one) or, with
 * `--json`, the route objects as the proxy sent them. The first use signs in as every command
 * does (a 302/401 → sign in → ask once more). `burrow ssh-config --from-routes` reads the same
 * list.
 *
 * Everything in the answer is the proxy's text. The table shows it through printableLine (no
 * control character, line break or escape sequence reaches the terminal) and never shows the
 * proxy's `connect_command`: burrow writes its own command from the route's `type` and `from`,
 * out of parsed host names and ports only.
 */
import type { Command } from 'commander';
import { AuthRequiredError, LoginError } from '../../errors.js';
import { fetchRoutes, type PortalRoute, type RouteType } from '../../net/routes-api.js';
import { printableLine } from '../../output/format.js';
import { text } from '../../output/messages.js';
import type { ProxyEndpoint } from '../../target.js';
import type { ProxyAccess } from '../../tunnel/access.js';
import { parseProxyOrigin, parseTarget } from '../destination.js';
import { addFlags } from '../flags.js';
import { serviceAccountToken, type ServiceAccountValues } from '../options.js';
import { commandLogger, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface RoutesValues extends ProxyAccessValues, ServiceAccountValues {
  json?: boolean;
  type?: RouteType;
}

const HELP = `
The list is the proxy's guess at what you may use: a listed route can still refuse you (HTTP 403,
when its policy says no), and a route you can reach may be missing from it. A proxy without the
routes API (older than Pomerium v0.29, or with its routes portal turned off) answers 404: exit 5.

Examples:
  $ burrow routes https://proxy.corp.example.com
  $ burrow routes proxy.corp.example.com --type tcp
  $ burrow routes proxy.corp.example.com --json | jq -r '.[].from'
  $ burrow ssh-config --from-routes https://proxy.corp.example.com --user git >> ~/.ssh/config
`;

export function registerRoutes(program: Command, runtime: Runtime): void {
  const command = program
    .command('routes')
    .description("list the routes a proxy offers you (its routes API), with the burrow command that reaches each one")
    .argument('<proxy>', 'the proxy: a host name, https://host[:port], or the address of a page behind it');
  addFlags(command, 'routes');
  command.addHelpText('after', HELP);
  command.action(async (input: string, values: RoutesValues) => {
    const proxy = parseProxyOrigin(input, 'proxy');
    const logger = commandLogger({ json: values.json }, runtime, 'info');
    const access = proxyAccess(proxy, values, runtime, logger, serviceAccountToken(values, runtime.env));
    const stop = new AbortController();
    const off = runtime.onSignal(() => stop.abort());
    try {
      const routes = await routesSignedIn(access, stop.signal);
      const shown = values.type === undefined ? routes : routes.filter((route) => route.type === values.type);
      if (values.json) runtime.stdout.write(`${inertJson(shown.map((route) => route.raw))}\n`);
      else if (shown.length > 0) runtime.stdout.write(routesTable(shown, proxy));
      if (shown.length === 0) logger.info(text.routesNone(proxy.origin, values.type));
      else if (!values.json && shown.some((route) => route.type === 'http')) logger.info(text.routesHttpHint(proxy.origin));
    } finally {
      off();
    }
  });
}

/**
 * The routes `access.proxy` lists, with the token burrow has for it; on a 302/401 it signs in
 * (or takes the token another process just got) and asks once more, as tunnels do.
 */
export async function routesSignedIn(access: ProxyAccess, signal: AbortSignal): Promise<PortalRoute[]> {
  const { proxy, route, tokens } = access;
  const request = { proxy, route, signal };
  const token = await tokens.get(proxy);
  try {
    return await fetchRoutes(request, token);
  } catch (error) {
    if (!(error instanceof AuthRequiredError)) throw error;
    if (!tokens.interactive) throw new AuthRequiredError(error.message, { hint: text.serviceAccountRejectedHint, cause: error });
    const fresh = await tokens.renew(proxy, token, signal, error.status);
    try {
      return await fetchRoutes(request, fresh);
    } catch (retryError) {
      if (!(retryError instanceof AuthRequiredError)) throw retryError;
      throw new LoginError('BURROW_LOGIN_REJECTED', text.routesRejectedAfterSignIn(proxy.origin), { hint: text.tokenRejectedAfterSignInHint, cause: retryError });
    }
  }
}

/**
 * The burrow command that reaches `route` through `proxy`, built from the parsed `from` alone
 * (host names and ports burrow validated): `burrow tcp host:port`, with `--pomerium-url` when
 * the proxy is not the host's own https on 443; `burrow udp …` alike; an http route's URL
 * itself. Undefined for a route burrow cannot reach (an unknown type, a `from` it cannot parse).
 */
export function reachCommand(route: PortalRoute, proxy: ProxyEndpoint): string | undefined {
  if (route.type === 'tcp' || route.type === 'udp') {
    let target;
    try {
      target = parseTarget(route.from, undefined, route.type);
    } catch {
      return undefined;
    }
    if (target.websocket !== undefined) return undefined;
    const command = `burrow ${route.type} ${target.destination.authority}`;
    // The URL's own origin leaves the default port out: https://proxy, not https://proxy:443.
    // host:port alone means https://host:443 (a tcp+http:// route's own proxy needs naming).
    const implied = target.proxy.scheme === 'https' && target.proxy.origin === proxy.origin;
    return implied ? command : `${command} --pomerium-url ${new URL(proxy.origin).origin}`;
  }
  if (route.type === 'http') {
    try {
      const url = new URL(route.from);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Format and invisible characters printableLine leaves alone: zero-width ones, marks, a BOM. */
const INVISIBLE = /[\u061c\u200b-\u200f\ufeff\ufff9-\ufffb]/g;

/**
 * One table cell from the proxy's text: every control character, line break, escape sequence,
 * bidi override and invisible character shown escaped (`\u001b`), cut to `max` characters.
 */
export function cell(value: string, max: number): string {
  const shown = printableLine(value).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const chars = [...shown];
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : shown;
}

/** The table on stdout: a header, then one line per route, columns two spaces apart. */
export function routesTable(routes: readonly PortalRoute[], proxy: ProxyEndpoint): string {
  const rows = [
    ['NAME', 'TYPE', 'FROM', 'COMMAND'],
    ...routes.map((route) => [
      cell(route.name || route.id || '-', 40),
      cell(route.type || '-', 10),
      cell(route.from, 120),
      cell(reachCommand(route, proxy) ?? text.routesNoCommand, 300),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => [...row[i]!].length)));
  return rows.map((row) => row.map((value, i) => (i === row.length - 1 ? value : value.padEnd(widths[i]! + value.length - [...value].length))).join('  ')).join('\n') + '\n';
}

/**
 * JSON with the characters JSON.stringify leaves raw that a terminal may act on (DEL and C1
 * controls, line and paragraph separators, bidi overrides, invisible ones) written as `\uXXXX`:
 * the same JSON value, inert when it is printed on a terminal.
 */
export function inertJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff\ufff9-\ufffb]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
