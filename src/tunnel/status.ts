/**
 * The one place a proxy's answer to a tunnel request becomes an error (pomerium-cli's
 * `httpStatusCodeToError`). Shared by every transport, table-tested in test/unit.
 * Only AuthRequiredError means "the token is bad"; every other error keeps it.
 */
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

/** What the request was: the proxy's origin and the destination asked of it, as messages name them. */
export interface AnswerSubject {
  proxy: string;
  dest: string;
}

export interface AnswerContext {
  /** Who the sent token names (unverified), so a denial can say whom the proxy refused. */
  user?: string | undefined;
  /** The transport's advice for a status with no meaning of its own (a gateway speaking another protocol). */
  unexpectedHint?: ((status: number) => string) | undefined;
}

/**
 * The answer's Retry-After, as words: "in 30 s" for delay-seconds, "after <date>" for an HTTP
 * date; undefined when absent or neither. Bounded and printable: it is the network's text.
 */
export function retryAfter(answer: ProxyAnswer): string | undefined {
  const value = answer.headers['retry-after']?.trim();
  if (!value) return undefined;
  if (/^[0-9]{1,9}$/.test(value)) return text.retryInSeconds(Number(value));
  if (/^[A-Za-z]{3}, [0-9]{2} [A-Za-z]{3} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$/.test(value)) return text.retryAfterDate(value);
  return undefined;
}

/** Returns undefined for success (2xx), else the error that answer means. */
export function statusToError(answer: ProxyAnswer, { proxy, dest }: AnswerSubject, context: AnswerContext = {}): BurrowError | undefined {
  const { status } = answer;
  const user = context.user;
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
      return new UpstreamUnavailableError(text.upstreamUnavailable(proxy, dest, status), { hint: text.upstreamUnavailableHint(retryAfter(answer)) });
    case 500:
      return new ProxyProtocolError(text.proxyServerError(proxy, dest, status), { code: 'BURROW_PROXY_STATUS', hint: text.proxyServerErrorHint(retryAfter(answer)), status });
    case 429:
      return new ProxyProtocolError(text.rateLimited(proxy, dest), { code: 'BURROW_PROXY_STATUS', hint: text.rateLimitedHint(retryAfter(answer)), status });
    default: {
      const hint = context.unexpectedHint?.(status) ?? text.unexpectedStatusHint;
      return new ProxyProtocolError(text.unexpectedStatus(proxy, dest, status, printable(answer.reason, 40)), {
        code: 'BURROW_PROXY_STATUS',
        hint,
        status,
      });
    }
  }
}

