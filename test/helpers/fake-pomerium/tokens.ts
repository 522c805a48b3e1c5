/**
 * The proxy's tokens: an ES256 key per instance, minting (as the sign-in flow issues them),
 * verification, and reading the token off a request's Authorization header.
 */
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Claims of the tokens this proxy issues. */
export interface TokenClaims {
  iss: string;
  aud: string;
  sub: string;
  email: string;
  iat: number;
  /** Absent from tokens minted with `noExpiry` (Pomerium's since v0.32.6 carry none). */
  exp?: number;
  [claim: string]: unknown;
}

/** Options of {@link FakePomerium.mintToken}. */
export interface MintTokenOptions {
  email?: string;
  /** Default: the email. */
  sub?: string;
  /** Default 3600; zero or negative gives an already expired token. */
  ttlSeconds?: number;
  /** No `exp` claim at all, as Pomerium's tokens since v0.32.6. */
  noExpiry?: boolean;
  /** Added to the standard claims (which win on a clash). */
  extraClaims?: Record<string, unknown>;
}

export interface TokenIssuer {
  /** A token signed by this proxy's key, as its sign-in flow would issue. */
  mintToken(options?: MintTokenOptions): string;
  /** The claims of `jwt` if this proxy signed it and it has not expired, else `null`. */
  verifyToken(jwt: string): TokenClaims | null;
}

/**
 * A fresh signing key for the proxy at `url` (tokens name it as `iss`, and `urlHost` as `aud`).
 * Tokens of one issuer are invalid at any other.
 */
export function createTokenIssuer(url: string, urlHost: string): TokenIssuer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    mintToken(mint: MintTokenOptions = {}): string {
      const email = mint.email ?? 'alice@corp.test';
      const iat = Math.floor(Date.now() / 1000);
      const claims: TokenClaims = {
        ...mint.extraClaims,
        iss: url,
        aud: urlHost,
        sub: mint.sub ?? email,
        email,
        iat,
        ...(mint.noExpiry ? {} : { exp: iat + (mint.ttlSeconds ?? 3600) }),
      };
      return signJwt(claims, privateKey);
    },
    verifyToken(jwt: string): TokenClaims | null {
      const claims = verifyJwt(jwt, publicKey);
      return claims && claims.iss === url ? claims : null;
    },
  };
}

/** The token of `Authorization: Pomerium <jwt>` or `Authorization: Bearer Pomerium-<jwt>`. */
export function tokenFrom(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization ?? '';
  return (/^Pomerium\s+(\S+)$/.exec(value) ?? /^Bearer\s+Pomerium-(\S+)$/.exec(value))?.[1];
}

/** The request's token and, when this proxy signed it and it is still valid, its claims. */
export function readToken(headers: IncomingHttpHeaders, issuer: TokenIssuer): { token: string | undefined; claims: TokenClaims | null } {
  const token = tokenFrom(headers);
  return { token, claims: token === undefined ? null : issuer.verifyToken(token) };
}

function signJwt(claims: TokenClaims, privateKey: KeyObject): string {
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', typ: 'JWT' })).toString('base64url');
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const input = `${header}.${payload}`;
  // JWS wants the raw r||s signature (IEEE P1363), not the DER that node produces by default.
  const signature = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

function verifyJwt(jwt: string, publicKey: KeyObject): TokenClaims | null {
  const [header, payload, signature, ...extra] = jwt.split('.');
  if (header === undefined || payload === undefined || signature === undefined || extra.length > 0) return null;
  try {
    if (JSON.parse(Buffer.from(header, 'base64url').toString()).alg !== 'ES256') return null;
    const valid = verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'));
    if (!valid) return null;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as TokenClaims;
    if (claims.exp === undefined) return claims;
    return typeof claims.exp === 'number' && Date.now() / 1000 < claims.exp ? claims : null;
  } catch {
    return null; // not base64url or not JSON: simply not a token of ours
  }
}
