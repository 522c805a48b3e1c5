/**
 * Tokens must never reach a terminal, a log or an error message. Every line burrow writes goes
 * through `redact`, which hides anything shaped like a JWT (three base64url parts, the first one
 * a JSON header, so it starts with "eyJ"), the credentials of an Authorization header, and the
 * `Pomerium-<token>` form. It hides tokens only: ordinary words ("a Pomerium-compatible proxy",
 * "cannot set Authorization: burrow sets it itself") are left alone, and every sentence of the
 * catalogue (messages.ts) passes unchanged (test/unit/redact.test.ts).
 */
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
/**
 * `Authorization: <scheme> <credentials>`: the credentials, whatever their shape, after one of the
 * schemes HTTP clients send (a word after "Authorization:" is not taken for a scheme).
 */
const AUTH_HEADER =
  /\b((?:proxy-|x-pomerium-)?authorization:\s*(?:bearer|basic|pomerium|token|digest|negotiate|ntlm|apikey|api-key|key|jwt|oauth|aws4-hmac-sha256)\s+)(?!\u2026\[hidden\])[^\s"',;]+/gi;
/** The `Bearer Pomerium-<token>` form; a bare `Pomerium-x` only when x looks like no word (a digit, `.` or `_` in it). */
const BEARER_POMERIUM = /\b(Bearer\s+)Pomerium-(?!\u2026\[hidden\])[^\s"',;]+/gi;
const POMERIUM_DASH = /\bPomerium-(?!\u2026\[hidden\])(?=[^\s"',;]*[0-9._])[^\s"',;]+/g;
const QUERY_TOKEN = /([?&]pomerium_jwt=)[^&#\s"']+/g;

/** Returns `text` with every token-shaped substring replaced by a short marker. */
export function redact(text: string): string {
  return text
    .replace(QUERY_TOKEN, '$1…[hidden]')
    .replace(JWT, (jwt) => `${jwt.slice(0, 4)}…[hidden]`)
    .replace(AUTH_HEADER, '$1…[hidden]')
    .replace(BEARER_POMERIUM, '$1Pomerium-…[hidden]')
    .replace(POMERIUM_DASH, 'Pomerium-…[hidden]');
}
