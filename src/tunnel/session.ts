/**
 * One tunnel for one local stream: get a token, open the transport, splice, report.
 * Listener mode runs one session per accepted connection; stdio mode runs exactly one.
 */
import type { Duplex } from 'node:stream';
import type { Target } from '../cli/destination.js';
import { type BurrowError, TunnelBrokenError, toBurrowError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { isNormalEnding, type SpliceResult, splice } from './splice.js';
import type { Transport } from './transport.js';

/** Where tokens come from: a service account today, the sign-in cache later. */
export interface TokenSource {
  get(target: Target): Promise<string | undefined>;
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
export async function runSession(local: Duplex, options: SessionOptions): Promise<SessionResult> {
  const { target, transport, logger, label } = options;
  const dest = target.destination.authority;
  // A local peer that leaves while we are still connecting must not crash us with 'error'.
  const earlyError = (error: Error) => logger.debug(`${label}: local stream error before the tunnel opened: ${error.message}`);
  local.on('error', earlyError);
  let remote: Duplex;
  try {
    const token = await options.tokens.get(target);
    logger.debug(`${label}: opening tunnel to ${dest} via ${target.proxy.origin} (${transport.name})`);
    remote = await transport.open({ target, token, signal: options.signal });
  } catch (error) {
    local.destroy();
    // Shutting down while the tunnel was still opening is not a failure of the tunnel.
    return { error: options.signal?.aborted ? undefined : toBurrowError(error) };
  } finally {
    local.off('error', earlyError);
  }
  if (local.destroyed) {
    remote.destroy();
    return { error: undefined };
  }
  logger.debug(`${label}: tunnel open to ${dest}`);
  const onAbort = () => {
    local.destroy();
    remote.destroy();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const result = await splice(local, remote, {
    // Destroying local ends the upload pipeline, which ends the splice.
    onRemoteEnd: options.endOnRemoteEof ? () => local.destroy() : undefined,
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
