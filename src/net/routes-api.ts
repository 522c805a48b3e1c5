/**
 * The proxy's routes API, `GET /.pomerium/api/v1/routes` (Pomerium v0.29 on): the routes the
 * signed-in user may see, as `{"routes":[{id, name, type, from, description, connect_command?,
 * logo_url?, …}]}`. Every string in it is the proxy's (or its admins') text: shown only after
 * printable() / printableLine(), never run, and `connect_command` is never shown at all (burrow
 * writes its own command from `type` and `from`).
 */
import { AccessDeniedError, AuthRequiredError, BurrowError, LoginError, ProxyProtocolError, ProxyUnreachableError, RouteNotFoundError } from '../errors.js';
import { text } from '../output/messages.js';
import type { ProxyEndpoint } from '../target.js';
import { apiGet } from './api-client.js';
import { printable } from './http-answer.js';
import type { RouteOptions } from './route.js';

export const ROUTES_PATH = '/.pomerium/api/v1/routes';
/** Characters of the answer read: thousands of routes fit; a proxy sending more is broken. */
export const MAX_ROUTES_ANSWER = 8 * 1024 * 1024;

/** The route types `burrow routes --type` filters on. */
export type RouteType = 'tcp' | 'udp' | 'http';
export const ROUTE_TYPES: readonly RouteType[] = ['tcp', 'udp', 'http'];

/** What burrow reads of one listed route; `raw` is the object as the proxy sent it. */
export interface PortalRoute {
  readonly raw: Readonly<Record<string, unknown>>;
  readonly id: string;
  readonly name: string;
  /** `tcp`, `udp`, `http`… as the proxy says, else from the scheme of `from`; lower case. */
  readonly type: string;
  readonly from: string;
  readonly description: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** The type a route's `from` implies: `tcp+https://…` is tcp, `udp+https://…` udp, `https://…` http. */
export function typeOf(from: string): string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(from)?.[1]?.toLowerCase() ?? '';
  if (scheme.startsWith('tcp+')) return 'tcp';
  if (scheme.startsWith('udp+')) return 'udp';
  return scheme === 'https' || scheme === 'http' ? 'http' : '';
}

/**
 * The routes in an answer's body, or what is wrong with it (a catalogue sentence, naming the
 * proxy). Pure; never throws.
 */
export function parseRoutes(body: string, proxy: string): PortalRoute[] | string {
  let data: unknown;
  try {
    data = JSON.parse(body) as unknown;
  } catch {
    return text.routesNotJson(proxy, printable(body.trimStart(), 40));
  }
  if (!isObject(data) || !Array.isArray(data.routes)) return text.routesBadShape(proxy, text.routesNoList);
  const routes: PortalRoute[] = [];
  for (const [i, entry] of (data.routes as unknown[]).entries()) {
    if (!isObject(entry)) return text.routesBadShape(proxy, text.routesNotObject(i + 1));
    if (typeof entry.from !== 'string' || entry.from === '') return text.routesBadShape(proxy, text.routesNoFrom(i + 1));
    const type = str(entry.type).toLowerCase() || typeOf(entry.from);
    routes.push({ raw: entry, id: str(entry.id), name: str(entry.name), type, from: entry.from, description: str(entry.description) });
  }
  return routes;
}

export interface RoutesRequest {
  proxy: ProxyEndpoint;
  route: RouteOptions;
  signal?: AbortSignal | undefined;
}

/**
 * The routes `proxy` lists for `token` (none: as a visitor who has not signed in). A 302 or 401
 * is an AuthRequiredError (the caller signs in and asks again), 403 AccessDeniedError, 404 (no
 * routes API) BURROW_NO_ROUTES_API, anything else or an answer that is not the list a
 * ProxyProtocolError.
 */
export async function fetchRoutes(request: RoutesRequest, token: string | undefined): Promise<PortalRoute[]> {
  const { proxy, route, signal } = request;
  const origin = proxy.origin;
  let answer;
  try {
    answer = await apiGet({ proxy, route, path: ROUTES_PATH, token, maxBody: MAX_ROUTES_ANSWER, signal });
  } catch (error) {
    if (error instanceof BurrowError) throw error;
    if (signal?.aborted) throw new LoginError('BURROW_LOGIN_ABORTED', text.routesAborted(origin), { cause: error });
    const code = (error as { code?: unknown }).code;
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      throw new ProxyUnreachableError(text.routesTimedOut(origin, route.connectTimeoutMs / 1000), { code: 'BURROW_TIMEOUT', hint: text.routesTimedOutHint, cause: error });
    }
    throw new ProxyProtocolError(text.routesFailed(origin, printable((error as Error).message, 80)), { hint: text.routesProtocolHint, cause: error });
  }
  const { status } = answer;
  if (status === 200) {
    if (answer.cut) throw new ProxyProtocolError(text.routesTooLarge(origin, MAX_ROUTES_ANSWER / (1024 * 1024)), { hint: text.routesProtocolHint });
    const routes = parseRoutes(answer.body, origin);
    if (typeof routes === 'string') throw new ProxyProtocolError(routes, { hint: text.routesProtocolHint });
    return routes;
  }
  if (status === 401 || (status >= 300 && status < 400)) {
    throw new AuthRequiredError(text.routesSignInRequired(origin, status), { status, ...(answer.location ? { location: answer.location } : {}) });
  }
  if (status === 403) throw new AccessDeniedError(text.routesDenied(origin), { hint: text.routesDeniedHint });
  if (status === 404) throw new RouteNotFoundError(text.noRoutesApi(origin), { code: 'BURROW_NO_ROUTES_API', hint: text.noRoutesApiHint });
  throw new ProxyProtocolError(text.routesStatus(origin, status), { status, code: 'BURROW_PROXY_STATUS', hint: status >= 500 ? text.routesServerErrorHint : text.routesProtocolHint });
}
