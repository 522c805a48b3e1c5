/**
 * The one place a proxy's answer to a tunnel request becomes an error (pomerium-cli's
 * `httpStatusCodeToError`). Shared by every transport, table-tested in test/unit.
 * Only AuthRequiredError means "the token is bad"; every other error keeps it.
 */
import type { Target } from '../cli/destination.js';
import {
  AccessDeniedError,
  AuthRequiredError,
  type BurrowError,
  ProxyProtocolError,
  RouteNotFoundError,
  UpstreamUnavailableError,
} from '../errors.js';
import { type HttpAnswer, printable } from '../net/http-answer.js';
import { text } from '../output/messages.js';

export type ProxyAnswer = HttpAnswer;

/**
 * Returns undefined for success (2xx), else the error that answer means. `user` is who the sent
 * token names (unverified), so a denial can say whom the proxy refused.
 */
export function statusToError(answer: ProxyAnswer, target: Target, user?: string): BurrowError | undefined {
  const { status } = answer;
  const proxy = target.proxy.origin;
  const dest = target.destination.authority;
  if (status >= 200 && status < 300) return undefined;
  switch (status) {
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
    case 401: {
      const location = answer.headers['location'];
      return new AuthRequiredError(text.authRequired(proxy, dest, status), {
        hint: text.authRequiredHint,
        status,
        ...(location ? { location } : {}),
      });
    }
    case 403:
      return new AccessDeniedError(text.accessDenied(proxy, dest, user), { hint: text.accessDeniedHint(proxy, user) });
    case 404:
      return new RouteNotFoundError(text.routeNotFound(proxy, dest), { hint: text.routeNotFoundHint });
    case 502:
    case 503:
    case 504:
      return new UpstreamUnavailableError(text.upstreamUnavailable(proxy, dest, status), { hint: text.upstreamUnavailableHint });
    default: {
      // 405/501 to CONNECT: a gateway that only passes WebSocket upgrades (or plain HTTP).
      const refusesConnect = !target.websocket && (status === 405 || status === 501);
      const hint = target.websocket ? text.notWebSocketHint : refusesConnect ? text.connectRefusedHint : text.unexpectedStatusHint;
      return new ProxyProtocolError(text.unexpectedStatus(proxy, dest, status, printable(answer.reason, 40)), {
        code: 'BURROW_PROXY_STATUS',
        hint,
        status,
      });
    }
  }
}

