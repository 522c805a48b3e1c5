/**
 * One tunnel for one local stream: get a token, open the transport (signing in once if the
 * proxy asks), splice, report. Listener mode runs one session per accepted connection; stdio
 * mode runs exactly one.
 */
import { Socket } from 'node:net';
import type { TokenSource } from '../auth/token-source.js';
import { AuthRequiredError, type BurrowError, LoginError, OutputError, TunnelBrokenError, toBurrowError } from '../errors.js';
import { type CloseReason, type ConnectionFields, failureFields } from '../output/events.js';
import type { Logger } from '../output/log.js';
import { errorWords, text } from '../output/messages.js';
import type { Target } from '../target.js';
import { armLimits, type SessionLimits } from './limits.js';
import { destroyLocal, type LocalEnd, type Side, type SpliceResult, splice } from './splice.js';
import type { Transport, Tunnel } from './transport.js';
import { StallError, watchStalls } from './watchdog.js';

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
  /**
   * A local client waiting for the tunnel's fate before it sends its bytes (`burrow proxy`'s
   * HTTP CONNECT or SOCKS request): told when the tunnel is open, or why it could not be.
   */
  answer?: LocalAnswer | undefined;
}

/** What a session tells a local client that asked for its tunnel (listen/proxy-request.ts speaks it). */
export interface LocalAnswer {
  /** The tunnel is open: say so (written just before the splice starts). */
  opened(): void;
  /** The tunnel could not be opened: say why and close the local side (instead of destroying it). */
  failed(error: BurrowError): void;
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
  const base: ConnectionFields = {
    conn: options.conn ?? 1,
    peer: label,
    dest: target.destination.authority,
    proxy: target.proxy.origin,
    transport: transport.name,
  };
  const started = now();
  const since = (t: number) => Math.round(now() - t);
  const bytes = () => localCounters(local);
  // A local peer that leaves while we are still connecting must not crash us with 'error'.
  const earlyError = (error: Error) => logger.debug(`${label}: local stream error before the tunnel opened: ${error.message}`);
  local.input.on('error', earlyError);
  local.output.on('error', earlyError);
  logger.event({ event: 'connecting', ...base });
  let opened: { tunnel: Tunnel; token: string | undefined };
  try {
    opened = await openSignedIn((token) => transport.open({ target, token, signal: options.signal }), options, base);
  } catch (error) {
    // Shutting down while the tunnel was still opening is not a failure of the tunnel.
    if (options.signal?.aborted) {
      destroyLocal(local);
      logger.event({ event: 'closed', ...base, ms: since(started), ...bytes(), reason: 'shutdown' });
      return { error: undefined };
    }
    const failure = toBurrowError(error);
    if (options.answer) options.answer.failed(failure);
    else destroyLocal(local);
    logger.event({ event: 'failed', ...base, ms: since(started), ...failureFields(failure) });
    return { error: failure };
  } finally {
    local.input.off('error', earlyError);
    local.output.off('error', earlyError);
  }
  const { tunnel, token } = opened;
  if (local.input.destroyed || local.output.destroyed) {
    tunnel.stream.destroy();
    logger.event({ event: 'closed', ...base, ms: since(started), ...bytes(), reason: 'local_closed' });
    return { error: undefined };
  }
  logger.event({ event: 'connected', ...base, ms: since(started) });
  // In the same tick as the splice's listeners go on: a failed write lands on them.
  options.answer?.opened();
  const openedAt = now();
  const run = await carry(local, tunnel, token, options);
  const ending = endingOf({ ...run, target, tunnel });
  logger.event({ event: 'closed', ...base, ms: since(openedAt), ...bytes(), reason: ending.reason, ...(ending.error ? failureFields(ending.error) : {}) });
  return { error: ending.error };
}

/** What happened while a tunnel was open, for `endingOf`. */
interface CarryResult {
  splice: SpliceResult;
  /** Which side's EOF came first, if either ended cleanly. */
  firstEnd: Side | undefined;
  /** Burrow was told to stop (the session's signal). */
  aborted: boolean;
  /** The `--max-duration` / `--close-on-token-expiry` limit that closed the tunnel, if any. */
  limitReached: BurrowError | undefined;
}

/** Splices the open tunnel with its limits, watchdog and shutdown wired in, until it is over. */
async function carry(local: LocalEnd, tunnel: Tunnel, token: string | undefined, options: SessionOptions): Promise<CarryResult> {
  const remote = tunnel.stream;
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
  const disarm = armLimits(options.limits, { token, dest: options.target.destination.authority, logger: options.logger }, (error) => {
    limitReached = error;
    onAbort();
  });
  // Two pipelines, splice, events and the watchdog each listen once: a WebSocket stream reaches
  // Node's default of 10 'error' listeners, which is no leak (nothing is added per chunk).
  remote.setMaxListeners(Math.max(remote.getMaxListeners(), 20));
  const stopWatching = options.stallTimeoutMs ? watchStalls({ local, tunnel, timeoutMs: options.stallTimeoutMs }) : undefined;
  // A tunnel that breaks (reset, stall, lost WebSocket) resets a listener's client connection
  // too, so the client sees an error rather than an EOF it could take for the end of the data.
  // Registered before splice's own listeners, which destroy the socket (a FIN) right after.
  // Stdio is left alone: stdin may be a pipe socket, which cannot be reset.
  remote.once('error', () => resetClient(local));
  const result = await splice(local, tunnel, {
    // Destroying local ends the upload pipeline, which ends the splice.
    onRemoteEnd: options.endOnRemoteEof ? () => destroyLocal(local) : undefined,
    // Stdio: one tunnel in the process, so a read buffer of its own from the first byte is cheap.
    readIntoAfter: options.endOnRemoteEof ? 0 : undefined,
  });
  disarm();
  stopWatching?.();
  options.signal?.removeEventListener('abort', onAbort);
  return { splice: result, firstEnd, aborted: options.signal?.aborted === true, limitReached };
}

/** Resets a listener's client connection (a TCP RST), if the local side is one. */
function resetClient(local: LocalEnd): void {
  const socket = local.input;
  if (socket !== (local.output as unknown) || !(socket instanceof Socket) || socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy(); // not a TCP handle after all
  }
}

/**
 * Why an open tunnel is over, and the error to report when that is a failure. Pure: it reads
 * only what the run left behind and the tunnel's counters.
 */
export function endingOf(run: CarryResult & { target: Target; tunnel: Pick<Tunnel, 'progress' | 'explain'> }): { reason: CloseReason; error: BurrowError | undefined } {
  const { aborted, target, tunnel } = run;
  const proxy = target.proxy.origin;
  const dest = target.destination.authority;
  if (run.limitReached && !aborted) return { reason: 'session_limit', error: run.limitReached };
  // Only the remote side can break a tunnel: a local peer that goes away (ssh killed, EPIPE)
  // is an ordinary ending.
  const { error, failedSide } = run.splice;
  const broken = error && failedSide === 'remote' && !aborted ? tunnel.explain(error) : undefined;
  if (broken) {
    const hint = error instanceof StallError ? text.stallHint : text.tunnelBrokenHint;
    return { reason: 'broken', error: new TunnelBrokenError(text.tunnelBroken(proxy, dest, broken), { hint, cause: error }) };
  }
  // Closed by the far end before a single byte came back, while we still had the floor: ssh
  // would only say "Connection closed"; this line says where.
  if (!aborted && run.firstEnd === 'remote' && tunnel.progress().received === 0) {
    return { reason: 'broken', error: new TunnelBrokenError(text.tunnelBroken(proxy, dest, text.closedBeforeData), { hint: text.closedBeforeDataHint }) };
  }
  if (aborted) return { reason: 'shutdown', error: undefined };
  // The local side could not take the tunnel's bytes for another reason than its reader going
  // away (stdout on a full disk, an I/O error): data was lost, which an ordinary ending would hide.
  const lost = error && failedSide === 'local' ? lostOutput(error) : undefined;
  if (lost) return { reason: 'broken', error: new OutputError(text.tunnelOutputFailed(dest, lost), { hint: text.outputFailedHint, cause: error }) };
  const side = failedSide ?? run.firstEnd ?? 'remote';
  return { reason: side === 'local' ? 'local_closed' : 'remote_closed', error: undefined };
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

/** What opening with a sign-in retry needs to know, whatever it opens. */
export interface SignedInContext {
  target: Target;
  tokens: TokenSource;
  logger: Logger;
  signal?: AbortSignal | undefined;
}

/**
 * Opens with the current token; on 302/401 signs in (or takes the token another tunnel or
 * process just got) and retries exactly once. A fresh token refused again is an error, never a
 * loop. `open` is a transport's: a stream tunnel, or a datagram tunnel.
 */
export async function openSignedIn<T>(
  open: (token: string | undefined) => Promise<T>,
  context: SignedInContext,
  base: ConnectionFields,
): Promise<{ tunnel: T; token: string | undefined }> {
  const { target, tokens, signal } = context;
  const token = await tokens.get(target.proxy);
  try {
    return { tunnel: await open(token), token };
  } catch (error) {
    if (!(error instanceof AuthRequiredError)) throw error;
    if (!tokens.interactive) {
      throw new AuthRequiredError(error.message, { hint: text.serviceAccountRejectedHint, cause: error });
    }
    context.logger.event({ event: 'sign_in_required', ...base, status: error.status ?? null });
    const fresh = await tokens.renew(target.proxy, token, signal, error.status);
    try {
      return { tunnel: await open(fresh), token: fresh };
    } catch (retryError) {
      if (!(retryError instanceof AuthRequiredError)) throw retryError;
      throw new LoginError('BURROW_LOGIN_REJECTED', text.tokenRejectedAfterSignIn(target.proxy.origin, target.destination.authority), {
        hint: text.tokenRejectedAfterSignInHint,
        cause: retryError,
      });
    }
  }
}

/** Errors of a local peer that went away: an ordinary ending, whatever was in flight. */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ECONNABORTED']);

/** Words for a failed write to the local side that lost data, or undefined when its peer left. */
function lostOutput(error: Error): string | undefined {
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (syscall !== 'write' || code === undefined || PEER_GONE.has(code)) return undefined;
  return errorWords(code, error.message);
}
