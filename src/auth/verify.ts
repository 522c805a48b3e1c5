/**
 * Checks a token before burrow calls it a sign-in: by asking the proxy, else by its shape.
 *
 * The proxy: `GET /.pomerium/api/v1/routes` with `Authorization: Bearer Pomerium-<jwt>`. Pomerium
 * answers 200 (the routes this user may see) for a token it accepts, 401 for one it does not
 * (since v0.33; a 302 to its sign-in page when it sees no usable token at all). An older proxy
 * that has no such endpoint answers 404: then only the token's structure is checked (three
 * base64url parts, a JSON header and payload, a signature as long as its algorithm makes them),
 * which catches a token cut off or mangled on its way through a terminal. Nothing here relies on
 * `exp`: Pomerium's tokens carry none since v0.32.6.
 */
import { BurrowError, LoginError } from '../errors.js';
import { apiGet } from '../net/api-client.js';
import type { RouteOptions } from '../net/route.js';
import { ROUTES_PATH } from '../net/routes-api.js';
import { text } from '../output/messages.js';
import type { ProxyEndpoint } from '../target.js';
import { JWT_SHAPE } from './jwt.js';

/** Only the start of the answer is looked at (the status says it all). */
const MAX_ROUTES_BODY = 64 * 1024;

export type TokenVerdict =
  /** `proxy`: the proxy accepted it; `shape`: the proxy cannot check tokens, and it looks whole. */
  | { ok: true; checkedBy: 'proxy' | 'shape' }
  /** The proxy refused it (its status), or it is not a whole JWT (`problem`, a catalogue sentence). */
  | { ok: false; status?: number; problem: string };

/**
 * Signature sizes in bytes by JWS `alg` (RFC 7518): a signature of another length was cut off.
 * RSA signatures are as long as the key: any of the usual sizes.
 */
const SIGNATURE_BYTES: Record<string, readonly number[]> = {
  ES256: [64],
  ES384: [96],
  ES512: [132],
  EdDSA: [64],
  HS256: [32],
  HS384: [48],
  HS512: [64],
};
const RSA_BYTES = [128, 256, 384, 512];

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A whole-looking JWT (undefined), or what is wrong with it (a catalogue sentence). Never throws. */
export function shapeProblem(token: string): string | undefined {
  if (!JWT_SHAPE.test(token)) return text.tokenNotWhole;
  const [header = '', payload = '', signature = ''] = token.split('.');
  // A base64url text of 4n+1 characters decodes to no whole byte count: the end is missing.
  if ([header, payload, signature].some((part) => part.length % 4 === 1)) return text.tokenNotWhole;
  const head = decodeJson(header);
  if (!isObject(head) || typeof head.alg !== 'string' || !isObject(decodeJson(payload))) return text.tokenNotWhole;
  const bytes = Buffer.from(signature, 'base64url').length;
  const sizes = SIGNATURE_BYTES[head.alg] ?? (/^(RS|PS)\d{3}$/.test(head.alg) ? RSA_BYTES : undefined);
  if (head.alg === 'none' || bytes === 0 || (sizes !== undefined && !sizes.includes(bytes))) return text.tokenNotWhole;
  return undefined;
}

export interface CheckOptions {
  proxy: ProxyEndpoint;
  route: RouteOptions;
  signal?: AbortSignal | undefined;
}

/**
 * What `proxy` says of `token` (or, from a proxy too old to say, its shape). Failing to reach
 * the proxy is thrown as the usual BurrowError (unreachable, TLS, …).
 */
export async function checkToken(options: CheckOptions, token: string): Promise<TokenVerdict> {
  const problem = shapeProblem(token);
  if (problem) return { ok: false, problem };
  const { proxy, route, signal } = options;
  try {
    const { status } = await apiGet({ proxy, route, path: ROUTES_PATH, token, maxBody: MAX_ROUTES_BODY, signal });
    if (status === 200) return { ok: true, checkedBy: 'proxy' };
    if (status === 401 || (status >= 300 && status < 400)) return { ok: false, status, problem: text.tokenRefusedByProxy(proxy.origin, status) };
    // 404 from a proxy older than the routes API, or anything else that is no verdict on the
    // token: it looked whole above, and the tunnel's own answer decides later.
    return { ok: true, checkedBy: 'shape' };
  } catch (error) {
    if (error instanceof BurrowError) throw error;
    if (signal?.aborted) throw new LoginError('BURROW_LOGIN_ABORTED', text.loginAborted(proxy.origin), { cause: error });
    throw new LoginError('BURROW_LOGIN_FAILED', text.tokenCheckFailed(proxy.origin, (error as Error).message), {
      hint: text.loginApiHint,
      cause: error,
    });
  }
}
