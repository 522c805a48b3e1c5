/**
 * Tokens must never reach a terminal, a log or an error message. Every line burrow writes goes
 * through `redact`, which hides anything shaped like a JWT (three base64url parts, the first one
 * a JSON header, so it starts with "eyJ") and anything after an Authorization scheme.
 */
const JWT = /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*/g;
const AUTH_VALUE = /\b(Pomerium|Bearer)(\s+|-)(?!…\[hidden\])[^\s"',;]+/g;
const QUERY_TOKEN = /([?&]pomerium_jwt=)[^&#\s"']+/g;

/** Returns `text` with every token-shaped substring replaced by a short marker. */
export function redact(text: string): string {
  return text
    .replace(QUERY_TOKEN, '$1…[hidden]')
    .replace(JWT, (jwt) => `${jwt.slice(0, 4)}…[hidden]`)
    .replace(AUTH_VALUE, (_match, scheme: string, sep: string) => `${scheme}${sep}…[hidden]`);
}
