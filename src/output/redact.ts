/**
 * Tokens must never reach a terminal, a log or an error message. Every line burrow writes goes
 * through `redact`, which hides anything shaped like a JWT (three base64url parts, the first one
 * a JSON header, so it starts with "eyJ"), the credentials of an Authorization header, and the
 * `Pomerium-<token>` form. Ordinary words ("a Pomerium proxy") are left alone.
 */
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
/** `Authorization: <scheme> <credentials>`: the credentials, whatever their shape. */
const AUTH_HEADER = /\b(authorization:\s*[A-Za-z]+\s+)(?!…\[hidden\])[^\s"',;]+/gi;
/** The `Bearer Pomerium-<jwt>` form, anywhere. */
const POMERIUM_DASH = /\bPomerium-(?!…\[hidden\])[^\s"',;]+/g;
const QUERY_TOKEN = /([?&]pomerium_jwt=)[^&#\s"']+/g;

/** Returns `text` with every token-shaped substring replaced by a short marker. */
export function redact(text: string): string {
  return text
    .replace(QUERY_TOKEN, '$1…[hidden]')
    .replace(JWT, (jwt) => `${jwt.slice(0, 4)}…[hidden]`)
    .replace(AUTH_HEADER, '$1…[hidden]')
    .replace(POMERIUM_DASH, 'Pomerium-…[hidden]');
}
