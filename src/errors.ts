/**
 * Every failure burrow reports is a `BurrowError`: a stable `code` (tests and tools match on it,
 * never on text), a one-line `message` naming the problem, an optional `hint` naming the fix,
 * and the process `exitCode` its class maps to. docs/errors.md lists them all.
 */

/** Exit codes, one per class of failure, so scripts and ssh wrappers can tell them apart. */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  authRequired: 3,
  accessDenied: 4,
  routeNotFound: 5,
  upstreamUnavailable: 6,
  proxyUnreachable: 7,
  tls: 8,
  proxyProtocol: 9,
  tunnelBroken: 10,
  credentialStore: 11,
  forwardProxy: 12,
  sessionLimit: 13,
  /** Standard output could not be written (a full disk, an I/O error): the output is incomplete. */
  output: 14,
  /** `burrow doctor`: this machine's clock is off from the proxy's by more than token expiry allows for. */
  clockSkew: 15,
  /** The reader of standard output went away (a closed pipe), as a process killed by SIGPIPE reports. */
  outputClosed: 141,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'BURROW_USAGE'
  | 'BURROW_INVALID_DESTINATION'
  | 'BURROW_INVALID_LISTEN'
  | 'BURROW_INVALID_URL'
  | 'BURROW_FILE_UNREADABLE'
  | 'BURROW_EXEC_INFO'
  | 'BURROW_CONFIG'
  | 'BURROW_LISTEN_FAILED'
  | 'BURROW_AUTH_REQUIRED'
  | 'BURROW_ACCESS_DENIED'
  | 'BURROW_ROUTE_NOT_FOUND'
  | 'BURROW_NO_ROUTES_API'
  | 'BURROW_UPSTREAM_UNAVAILABLE'
  | 'BURROW_PROXY_STATUS'
  | 'BURROW_PROXY_PROTOCOL'
  | 'BURROW_PROXY_UNREACHABLE'
  | 'BURROW_DNS'
  | 'BURROW_TIMEOUT'
  | 'BURROW_TOO_MANY_FILES'
  | 'BURROW_TLS_UNTRUSTED'
  | 'BURROW_TLS_HOSTNAME'
  | 'BURROW_TLS_CLIENT_CERT'
  | 'BURROW_TLS'
  | 'BURROW_TUNNEL_BROKEN'
  | 'BURROW_SESSION_LIMIT'
  | 'BURROW_LOGIN_TIMEOUT'
  | 'BURROW_LOGIN_FAILED'
  | 'BURROW_LOGIN_ABORTED'
  | 'BURROW_LOGIN_REJECTED'
  | 'BURROW_LOCK_TIMEOUT'
  | 'BURROW_LOGIN_UNAVAILABLE'
  | 'BURROW_NOT_SIGNED_IN'
  | 'BURROW_CREDENTIAL_STORE'
  | 'BURROW_FORWARD_PROXY'
  | 'BURROW_FORWARD_PROXY_AUTH'
  | 'BURROW_FORWARD_PROXY_DENIED'
  | 'BURROW_FORWARD_PROXY_UPSTREAM'
  | 'BURROW_OUTPUT'
  | 'BURROW_CLOCK_SKEW'
  | 'BURROW_PROXY_REQUEST'
  | 'BURROW_DESTINATION_REFUSED'
  | 'BURROW_INTERNAL';

export interface BurrowErrorOptions {
  hint?: string | undefined;
  cause?: unknown;
}

/** The base of every error burrow reports to a user. */
export class BurrowError extends Error {
  override readonly name: string = 'BurrowError';
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, exitCode: ExitCode, message: string, options: BurrowErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

/** Bad flags, destinations, addresses or files given on the command line, or a bad config file (`BURROW_CONFIG`). */
export class UsageError extends BurrowError {
  override readonly name = 'UsageError';
  constructor(
    message: string,
    options: BurrowErrorOptions & {
      code?: Extract<
        ErrorCode,
        'BURROW_USAGE' | 'BURROW_INVALID_DESTINATION' | 'BURROW_INVALID_LISTEN' | 'BURROW_INVALID_URL' | 'BURROW_FILE_UNREADABLE' | 'BURROW_EXEC_INFO' | 'BURROW_CONFIG'
      >;
    } = {},
  ) {
    super(options.code ?? 'BURROW_USAGE', ExitCode.usage, message, options);
  }
}

/** The local listener could not be opened (address in use, permission denied). */
export class ListenError extends BurrowError {
  override readonly name = 'ListenError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_LISTEN_FAILED', ExitCode.usage, message, options);
  }
}

/** The proxy wants a sign-in (302/401): the only error that invalidates a cached token. */
export class AuthRequiredError extends BurrowError {
  override readonly name = 'AuthRequiredError';
  /** Where the proxy redirected to, when it said (a sign-in page). */
  readonly location: string | undefined;
  readonly status: number | undefined;
  constructor(message: string, options: BurrowErrorOptions & { location?: string; status?: number } = {}) {
    super('BURROW_AUTH_REQUIRED', ExitCode.authRequired, message, options);
    this.location = options.location;
    this.status = options.status;
  }
}

/** 403: signed in, but the route's policy does not allow this user. The token stays cached. */
export class AccessDeniedError extends BurrowError {
  override readonly name = 'AccessDeniedError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_ACCESS_DENIED', ExitCode.accessDenied, message, options);
  }
}

/**
 * 404: the proxy has no route for this destination, or (`BURROW_NO_ROUTES_API`, `burrow routes`)
 * no routes API: a Pomerium older than v0.29, or one whose routes portal is turned off.
 */
export class RouteNotFoundError extends BurrowError {
  override readonly name = 'RouteNotFoundError';
  constructor(message: string, options: BurrowErrorOptions & { code?: 'BURROW_ROUTE_NOT_FOUND' | 'BURROW_NO_ROUTES_API' } = {}) {
    super(options.code ?? 'BURROW_ROUTE_NOT_FOUND', ExitCode.routeNotFound, message, options);
  }
}

/** 503 (and 502/504): the proxy could not reach the service behind the route. */
export class UpstreamUnavailableError extends BurrowError {
  override readonly name = 'UpstreamUnavailableError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_UPSTREAM_UNAVAILABLE', ExitCode.upstreamUnavailable, message, options);
  }
}

/** The proxy answered, but not with anything a tunnel endpoint says. */
export class ProxyProtocolError extends BurrowError {
  override readonly name = 'ProxyProtocolError';
  readonly status: number | undefined;
  constructor(
    message: string,
    options: BurrowErrorOptions & { status?: number; code?: 'BURROW_PROXY_STATUS' | 'BURROW_PROXY_PROTOCOL' } = {},
  ) {
    super(options.code ?? 'BURROW_PROXY_PROTOCOL', ExitCode.proxyProtocol, message, options);
    this.status = options.status;
  }
}

/** The proxy could not be reached at all: refused, unresolvable, timed out. */
export class ProxyUnreachableError extends BurrowError {
  override readonly name = 'ProxyUnreachableError';
  constructor(
    message: string,
    options: BurrowErrorOptions & { code?: 'BURROW_PROXY_UNREACHABLE' | 'BURROW_DNS' | 'BURROW_TIMEOUT' | 'BURROW_TOO_MANY_FILES' } = {},
  ) {
    super(options.code ?? 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, message, options);
  }
}

/** The TLS handshake with the proxy failed. */
export class TlsError extends BurrowError {
  override readonly name = 'TlsError';
  constructor(
    message: string,
    options: BurrowErrorOptions & {
      code?: 'BURROW_TLS_UNTRUSTED' | 'BURROW_TLS_HOSTNAME' | 'BURROW_TLS_CLIENT_CERT' | 'BURROW_TLS';
    } = {},
  ) {
    super(options.code ?? 'BURROW_TLS', ExitCode.tls, message, options);
  }
}

/** An established tunnel ended abnormally (the proxy dropped or reset it mid-stream). */
export class TunnelBrokenError extends BurrowError {
  override readonly name = 'TunnelBrokenError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_TUNNEL_BROKEN', ExitCode.tunnelBroken, message, options);
  }
}

/**
 * The tunnel was closed on purpose because it reached a limit the user set: `--max-duration`,
 * or the expiry of the token it was opened with (`--close-on-token-expiry`). Pomerium checks
 * policy only when a tunnel opens, so these limits are how a long session gets re-checked.
 */
export class SessionLimitError extends BurrowError {
  override readonly name = 'SessionLimitError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_SESSION_LIMIT', ExitCode.sessionLimit, message, options);
  }
}

/** Standard output could not be written (ENOSPC on a full disk, EIO): what was printed is incomplete. */
export class OutputError extends BurrowError {
  override readonly name = 'OutputError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_OUTPUT', ExitCode.output, message, options);
  }
}

/** Browser sign-in did not produce a usable token: timed out, aborted, refused, or rejected. */
export class LoginError extends BurrowError {
  override readonly name = 'LoginError';
  constructor(
    code: 'BURROW_LOGIN_TIMEOUT' | 'BURROW_LOGIN_FAILED' | 'BURROW_LOGIN_ABORTED' | 'BURROW_LOGIN_REJECTED' | 'BURROW_LOCK_TIMEOUT' | 'BURROW_LOGIN_UNAVAILABLE',
    message: string,
    options: BurrowErrorOptions = {},
  ) {
    super(code, code === 'BURROW_LOGIN_ABORTED' ? ExitCode.interrupted : ExitCode.authRequired, message, options);
  }
}

/**
 * `burrow status` found no usable sign-in (for the proxy asked, or for any): the sign-in class,
 * so a script can run `burrow status <proxy> || burrow login <proxy>`, as with `gh auth status`.
 */
export class NotSignedInError extends BurrowError {
  override readonly name = 'NotSignedInError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_NOT_SIGNED_IN', ExitCode.authRequired, message, options);
  }
}

/** The credential store cannot be used at all (an explicit choice that does not work). */
export class CredentialStoreError extends BurrowError {
  override readonly name = 'CredentialStoreError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_CREDENTIAL_STORE', ExitCode.credentialStore, message, options);
  }
}

/** The corporate forward proxy in front of the identity proxy failed: refused, 407, 403, 502… */
export class ForwardProxyError extends BurrowError {
  override readonly name = 'ForwardProxyError';
  constructor(
    message: string,
    options: BurrowErrorOptions & {
      code?: 'BURROW_FORWARD_PROXY' | 'BURROW_FORWARD_PROXY_AUTH' | 'BURROW_FORWARD_PROXY_DENIED' | 'BURROW_FORWARD_PROXY_UPSTREAM';
    } = {},
  ) {
    super(options.code ?? 'BURROW_FORWARD_PROXY', ExitCode.forwardProxy, message, options);
  }
}

/**
 * `burrow doctor` found this machine's clock off from the proxy's (its `Date` header) by more than
 * the margin burrow allows when it judges a token's expiry.
 */
export class ClockSkewError extends BurrowError {
  override readonly name = 'ClockSkewError';
  constructor(message: string, options: BurrowErrorOptions = {}) {
    super('BURROW_CLOCK_SKEW', ExitCode.clockSkew, message, options);
  }
}

/**
 * `burrow proxy` turned a local client's request down without contacting anyone: a request it
 * cannot read or does not serve (`BURROW_PROXY_REQUEST`: malformed, too large or too slow, not
 * CONNECT, a SOCKS method or command it does not offer), or a destination outside its
 * `--domain` list (`BURROW_DESTINATION_REFUSED`). The listener keeps serving.
 */
export class ProxyRequestError extends BurrowError {
  override readonly name = 'ProxyRequestError';
  constructor(message: string, options: BurrowErrorOptions & { code?: 'BURROW_PROXY_REQUEST' | 'BURROW_DESTINATION_REFUSED' } = {}) {
    const code = options.code ?? 'BURROW_PROXY_REQUEST';
    super(code, code === 'BURROW_DESTINATION_REFUSED' ? ExitCode.accessDenied : ExitCode.usage, message, options);
  }
}

/** Where bugs are reported: package.json "bugs" (test/e2e/package.test.ts keeps the two equal). */
export const ISSUES_URL = 'https://github.com/burrow-tunnel/burrow/issues';

/** Wraps anything that is not already a BurrowError, so the top level has one shape to print. */
export function toBurrowError(error: unknown): BurrowError {
  if (error instanceof BurrowError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new BurrowError('BURROW_INTERNAL', ExitCode.internal, `unexpected error: ${message}`, {
    cause: error,
    hint: `this is a bug in burrow; please report it at ${ISSUES_URL} with the command you ran (run with --verbose for details)`,
  });
}
