/**
 * Reads what burrow needs from a JWT without verifying it (the proxy verifies; we only need to
 * know when to stop sending it and whom it names). Tolerant: a token we cannot decode is still
 * usable, it just has no known expiry.
 */

export interface TokenInfo {
  /**
   * When to stop sending the token, in seconds since the epoch: `exp` less a margin for clock
   * skew (10 s, or a quarter of the token's lifetime for very short-lived tokens).
   */
  expiresAt: number | undefined;
  /** `email`, else `sub`, when present. */
  user: string | undefined;
}

/** Tokens are compact JWS: three base64url parts. Used to validate pasted input. */
export const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** A token is treated as expired this long before its `exp`, for clock skew between machines. */
export const EXPIRY_SKEW_SECONDS = 10;


/**
 * The latest `exp` taken at face value (the end of year 9999). Beyond it (1e308, say) a token
 * states no usable expiry: it is treated as having none, and the proxy's 302/401 decides.
 */
const MAX_EXP = 253_402_300_799;

/** Control characters and bidi overrides: a claim is shown on a terminal, never obeyed by it. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/g;

/** Decodes the payload's `exp` and user claims; never throws. */
export function tokenInfo(jwt: string): TokenInfo {
  const payload = jwt.split('.')[1];
  if (!payload || payload.length > 64 * 1024) return { expiresAt: undefined, user: undefined };
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    if (typeof claims !== 'object' || claims === null) return { expiresAt: undefined, user: undefined };
    const exp = typeof claims.exp === 'number' && Math.abs(claims.exp) <= MAX_EXP ? claims.exp : undefined;
    const iat = typeof claims.iat === 'number' && Number.isFinite(claims.iat) ? claims.iat : undefined;
    const skew = exp !== undefined && iat !== undefined && exp > iat ? Math.min(EXPIRY_SKEW_SECONDS, (exp - iat) / 4) : EXPIRY_SKEW_SECONDS;
    const user = typeof claims.email === 'string' ? claims.email : typeof claims.sub === 'string' ? claims.sub : undefined;
    return { expiresAt: exp === undefined ? undefined : exp - skew, user: user?.slice(0, 256).replace(UNPRINTABLE, '?') };
  } catch {
    return { expiresAt: undefined, user: undefined };
  }
}

/** True when a token with this `expiresAt` (skew already applied) should no longer be sent. */
export function isExpired(expiresAt: number | undefined, nowMs: number): boolean {
  return expiresAt !== undefined && nowMs / 1000 >= expiresAt;
}
