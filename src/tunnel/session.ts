/**
 * One tunnel for one local stream: get a token, open the transport, splice, report.
 * Listener mode runs one session per accepted connection; stdio mode runs exactly one.
 */
import { Socket } from 'node:net';
import type { ProxyEndpoint, Target } from '../cli/destination.js';
import { AuthRequiredError, type BurrowError, LoginError, TunnelBrokenError, toBurrowError } from '../errors.js';
import { type ConnectionFields, failureFields } from '../output/events.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import { armLimits, type SessionLimits } from './limits.js';
import { destroyLocal, isNormalEnding, type LocalEnd, type Side, type SpliceResult, splice } from './splice.js';
import type { Transport, TunnelStream } from './transport.js';
import { StallError, watchStalls } from './watchdog.js';

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
  /** This connection's number in the process, for events (default 1). */
  conn?: number;
  /** `--max-duration` and `--close-on-token-expiry` (limits.ts). */
  limits?: SessionLimits | undefined;
  /** `--stall-timeout` (watchdog.ts); 0 or undefined = off. */
  stallTimeoutMs?: number | undefined;
}

/** Bytes read from the local side (sent up the tunnel) and written to it; null when unknown. */
export interface ByteCounts {
  bytes_up: number | null;
  bytes_down: number | null;
}

export interface SessionResult {
  /** Why the tunnel could not open, or broke; undefined for a clean close or a shutdown. */
  error: BurrowError | undefined;
}

/** Monotonic milliseconds. Not `performance.now()`: its first use loads perf_hooks (~0.5 ms of start-up). */
const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Opens a tunnel for `local` and splices until either side is done. Never rejects. */
export async function runSession(local: LocalEnd, options: SessionOptions): Promise<SessionResult> {
  const { target, transport, logger, label } = options;
  const dest = target.destination.authority;
  const base: ConnectionFields = { conn: options.conn ?? 1, peer: label, dest, proxy: target.proxy.origin, transport: transport.name };
  const started = now();
  const since = (t: number) => Math.round(now() - t);
  const bytes = () => localCounters(local);
  // A local peer that leaves while we are still connecting must not crash us with 'error'.
  const earlyError = (error: Error) => logger.debug(`${label}: local stream error before the tunnel opened: ${error.message}`);
  local.input.on('error', earlyError);
  local.output.on('error', earlyError);
  logger.event({ event: 'connecting', ...base });
  let remote: TunnelStream;
  let token: string | undefined;
  try {
    ({ remote, token } = await openSignedIn(options, base));
  } catch (error) {
    destroyLocal(local);
    // Shutting down while the tunnel was still opening is not a failure of the tunnel.
    if (options.signal?.aborted) {
      logger.event({ event: 'closed', ...base, ms: since(started), ...bytes(), reason: 'shutdown' });
      return { error: undefined };
    }
    const failure = toBurrowError(error);
    logger.event({ event: 'failed', ...base, ms: since(started), ...failureFields(failure) });
    return { error: failure };
  } finally {
    local.input.off('error', earlyError);
    local.output.off('error', earlyError);
  }
  if (local.input.destroyed || local.output.destroyed) {
    remote.destroy();
    logger.event({ event: 'closed', ...base, ms: since(started), ...bytes(), reason: 'local_closed' });
    return { error: undefined };
  }
  logger.event({ event: 'connected', ...base, ms: since(started) });
  const opened = now();
  // Who ended first, for the closed event: one listener per side, nothing per chunk.
  let firstEnd: Side | undefined;
  local.input.once('end', () => (firstEnd ??= 'local'));
  remote.once('end', () => (firstEnd ??= 'remote'));
  const onAbort = () => {
    destroyLocal(local);
    remote.destroy();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let limitReached: BurrowError | undefined;
  const disarm = armLimits(options.limits, { token, dest, logger }, (error) => {
    limitReached = error;
    onAbort();
  });
  // Two pipelines, splice, events and the watchdog each listen once: a WebSocket stream reaches
  // Node's default of 10 'error' listeners, which is no leak (nothing is added per chunk).
  remote.setMaxListeners(Math.max(remote.getMaxListeners(), 20));
  const wire = remote.wire ?? (remote instanceof Socket ? remote : undefined);
  const stopWatching = options.stallTimeoutMs && wire ? watchStalls({ local, remote, wire, timeoutMs: options.stallTimeoutMs }) : undefined;
  // Bytes already read but not yet delivered (sent with the 200) count as data that came back.
  const readAtOpen = wire ? wire.bytesRead - remote.readableLength : 0;
  // A tunnel that breaks (reset, stall, lost WebSocket) resets a listener's client connection
  // too, so the client sees an error rather than an EOF it could take for the end of the data.
  // Registered before splice's own listeners, which destroy the socket (a FIN) right after.
  // Stdio is left alone: stdin may be a pipe socket, which cannot be reset.
  remote.once('error', () => {
    const socket = local.input;
    if (socket !== (local.output as unknown) || !(socket instanceof Socket) || socket.destroyed) return;
    try {
      socket.resetAndDestroy();
    } catch {
      socket.destroy(); // not a TCP handle after all
    }
  });
  const result = await splice(local, remote, {
    // Destroying local ends the upload pipeline, which ends the splice.
    onRemoteEnd: options.endOnRemoteEof ? () => destroyLocal(local) : undefined,
  });
  disarm();
  stopWatching?.();
  options.signal?.removeEventListener('abort', onAbort);
  const aborted = options.signal?.aborted === true;
  const broken = brokenReason(result, aborted);
  const closed = { event: 'closed', ...base, ms: since(opened), ...bytes() } as const;
  if (limitReached && !aborted) {
    logger.event({ ...closed, reason: 'session_limit', ...failureFields(limitReached) });
    return { error: limitReached };
  }
  if (broken) {
    const hint = result.error instanceof StallError ? text.stallHint : text.tunnelBrokenHint;
    const error = new TunnelBrokenError(text.tunnelBroken(target.proxy.origin, dest, broken), { hint, cause: result.error });
    logger.event({ ...closed, reason: 'broken', ...failureFields(error) });
    return { error };
  }
  // Closed by the far end before a single byte came back, while we still had the floor: ssh
  // would only say "Connection closed"; this line says where.
  if (!aborted && firstEnd === 'remote' && wire && wire.bytesRead === readAtOpen) {
    const error = new TunnelBrokenError(text.tunnelBroken(target.proxy.origin, dest, text.closedBeforeData), { hint: text.closedBeforeDataHint });
    logger.event({ ...closed, reason: 'broken', ...failureFields(error) });
    return { error };
  }
  const side = result.failedSide ?? firstEnd ?? 'remote';
  logger.event({ ...closed, reason: aborted ? 'shutdown' : side === 'local' ? 'local_closed' : 'remote_closed' });
  return { error: undefined };
}

/**
 * The byte counters the local streams keep themselves (a socket, a pipe or terminal as stdin or
 * stdout, a file as stdin), read once when the tunnel is over: nothing runs per chunk. A file
 * as stdout keeps none: null.
 */
export function localCounters(local: LocalEnd): ByteCounts {
  const read = (local.input as { bytesRead?: unknown }).bytesRead;
  const written = (local.output as { bytesWritten?: unknown }).bytesWritten;
  return { bytes_up: typeof read === 'number' ? read : null, bytes_down: typeof written === 'number' ? written : null };
}

/**
 * Opens the tunnel with the current token; on 302/401 signs in (or takes the token another
 * tunnel or process just got) and retries exactly once. A fresh token refused again is an
 * error, never a loop.
 */
async function openSignedIn(options: SessionOptions, base: ConnectionFields): Promise<{ remote: TunnelStream; token: string | undefined }> {
  const { target, transport, tokens, signal } = options;
  const token = await tokens.get(target.proxy);
  try {
    return { remote: await transport.open({ target, token, signal }), token };
  } catch (error) {
    if (!(error instanceof AuthRequiredError)) throw error;
    if (!tokens.interactive) {
      throw new AuthRequiredError(error.message, { hint: text.serviceAccountRejectedHint, cause: error });
    }
    options.logger.event({ event: 'sign_in_required', ...base, status: error.status ?? null });
    const fresh = await tokens.renew(target.proxy, token, signal);
    try {
      return { remote: await transport.open({ target, token: fresh, signal }), token: fresh };
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
  // ws's words for a write that met the WebSocket closing ("WebSocket is not open: readyState 2").
  if (/^WebSocket is not open/.test(error.message)) return text.webSocketClosedWhileSending;
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${code}` : error.message;
}
