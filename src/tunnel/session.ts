/**
 * One tunnel for one local stream: get a token, open the transport, splice, report.
 * Listener mode runs one session per accepted connection; stdio mode runs exactly one.
 */
import type { Duplex } from 'node:stream';
import type { ProxyEndpoint, Target } from '../cli/destination.js';
import { AuthRequiredError, type BurrowError, LoginError, TunnelBrokenError, toBurrowError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { destroyLocal, isNormalEnding, type LocalEnd, type SpliceResult, splice } from './splice.js';
import type { Transport } from './transport.js';

/** Where tokens come from (src/auth/credentials.ts). */
export interface TokenSource {
  /** False for service accounts: a refused token is then an error, not a reason to sign in. */
  readonly interactive: boolean;
  get(proxy: ProxyEndpoint): Promise<string | undefined>;
  /** Forgets `rejected` and returns a fresh token (signing in if no one else just did). */
  renew(proxy: ProxyEndpoint, rejected: string | undefined, signal?: AbortSignal): Promise<string>;
}

export interface SessionOptions {
  target: Target;
  transport: Transport;
  tokens: TokenSource;
  logger: Logger;
  /** A label for log lines, e.g. the local peer address. */
  label: string;
  signal?: AbortSignal | undefined;
  /** End the session once the remote EOF is flushed locally (stdio mode). */
  endOnRemoteEof?: boolean;
}

export interface SessionResult {
  /** Why the tunnel could not open, or broke; undefined for a clean close or a shutdown. */
  error: BurrowError | undefined;
}

/** Opens a tunnel for `local` and splices until either side is done. Never rejects. */
export async function runSession(local: LocalEnd, options: SessionOptions): Promise<SessionResult> {
  const { target, transport, logger, label } = options;
  const dest = target.destination.authority;
  // A local peer that leaves while we are still connecting must not crash us with 'error'.
  const earlyError = (error: Error) => logger.debug(`${label}: local stream error before the tunnel opened: ${error.message}`);
  local.input.on('error', earlyError);
  local.output.on('error', earlyError);
  let remote: Duplex;
  try {
    logger.debug(`${label}: opening tunnel to ${dest} via ${target.proxy.origin} (${transport.name})`);
    remote = await openSignedIn(options);
  } catch (error) {
    destroyLocal(local);
    // Shutting down while the tunnel was still opening is not a failure of the tunnel.
    return { error: options.signal?.aborted ? undefined : toBurrowError(error) };
  } finally {
    local.input.off('error', earlyError);
    local.output.off('error', earlyError);
  }
  if (local.input.destroyed || local.output.destroyed) {
    remote.destroy();
    return { error: undefined };
  }
  logger.debug(`${label}: tunnel open to ${dest}`);
  const onAbort = () => {
    destroyLocal(local);
    remote.destroy();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const result = await splice(local, remote, {
    // Destroying local ends the upload pipeline, which ends the splice.
    onRemoteEnd: options.endOnRemoteEof ? () => destroyLocal(local) : undefined,
  });
  options.signal?.removeEventListener('abort', onAbort);
  const broken = brokenReason(result, options.signal?.aborted === true);
  if (broken) {
    const error = new TunnelBrokenError(text.tunnelBroken(target.proxy.origin, dest, broken), { hint: text.tunnelBrokenHint, cause: result.error });
    return { error };
  }
  logger.debug(`${label}: tunnel closed${result.error ? ` (${describe(result.error)})` : ''}`);
  return { error: undefined };
}

/**
 * Opens the tunnel with the current token; on 302/401 signs in (or takes the token another
 * tunnel or process just got) and retries exactly once. A fresh token refused again is an
 * error, never a loop.
 */
async function openSignedIn(options: SessionOptions): Promise<Duplex> {
  const { target, transport, tokens, signal } = options;
  const token = await tokens.get(target.proxy);
  try {
    return await transport.open({ target, token, signal });
  } catch (error) {
    if (!(error instanceof AuthRequiredError)) throw error;
    if (!tokens.interactive) {
      throw new AuthRequiredError(error.message, { hint: text.serviceAccountRejectedHint, cause: error });
    }
    options.logger.debug(`${options.label}: ${error.message}; signing in`);
    const fresh = await tokens.renew(target.proxy, token, signal);
    try {
      return await transport.open({ target, token: fresh, signal });
    } catch (retryError) {
      if (!(retryError instanceof AuthRequiredError)) throw retryError;
      throw new LoginError('BURROW_LOGIN_REJECTED', text.tokenRejectedAfterSignIn(target.proxy.origin, target.destination.authority), {
        hint: text.tokenRejectedAfterSignInHint,
        cause: retryError,
      });
    }
  }
}

/**
 * Why the tunnel broke, or undefined if it ended normally. Only the remote side can break it:
 * a local peer that goes away (ssh killed, EPIPE) is an ordinary ending. A reset from the proxy
 * is a break; a plain close is not, because Node cannot tell a TLS close_notify from a bare FIN.
 */
function brokenReason({ error, failedSide }: SpliceResult, aborted: boolean): string | undefined {
  if (!error || failedSide !== 'remote' || aborted) return undefined;
  if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') return 'connection reset';
  return isNormalEnding(error) ? undefined : describe(error);
}

function describe(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${code}` : error.message;
}
