/**
 * The stall watchdog (`--stall-timeout`): a CONNECT tunnel has no application-level ping, so a
 * proxy that stops reading and writing but keeps its TCP connection (a hung process, a
 * middlebox that dropped its state without a reset) would otherwise keep a tunnel, and the ssh
 * or git above it, waiting forever. Two conditions end the tunnel:
 *
 * - **Sending stalled**: bytes are queued toward the proxy and none of them has gone out for
 *   the whole timeout (the kernel's buffers are full because nobody reads at the other end).
 * - **Silent after local EOF**: our side has finished sending, and nothing at all has come
 *   back for the whole timeout, while we were ready to take it.
 *
 * It costs nothing per chunk: one timer per tunnel samples the counters its transport reports
 * (`Tunnel.progress`: sent, received, queued on the connection carrying it). An idle
 * tunnel with both sides open is never cut: silence alone is normal (an idle ssh session).
 */
import { text } from '../output/messages.js';
import type { LocalEnd } from './splice.js';
import type { Tunnel } from './transport.js';

/** Destroys the tunnel's remote stream; the session reports it as a broken tunnel. */
export class StallError extends Error {
  override readonly name = 'StallError';
}

export interface WatchOptions {
  /** The local side (a client socket, or stdin and stdout). */
  local: LocalEnd;
  /** What the transport handed back: its stream, and the counters that say whether bytes move. */
  tunnel: Tunnel;
  timeoutMs: number;
}

/** How often counters are sampled: a quarter of the timeout, within bounds. */
export function sampleInterval(timeoutMs: number): number {
  return Math.min(5000, Math.max(20, Math.floor(timeoutMs / 4)));
}

/** Starts watching; returns the function that stops it (call it when the splice is over). */
export function watchStalls({ local, tunnel, timeoutMs }: WatchOptions): () => void {
  const remote = tunnel.stream;
  let { sent: written, queued, received: read } = tunnel.progress();
  let sendingSince = Date.now();
  let localEnded = false;
  let silentSince = 0;
  const onLocalEnd = () => {
    localEnded = true;
    silentSince = Date.now();
  };
  local.input.once('end', onLocalEnd);

  const seconds = Math.round(timeoutMs / 100) / 10;
  const timer = setInterval(() => {
    const now = Date.now();
    const progress = tunnel.progress();
    const nowWritten = progress.sent;
    const nowQueued = progress.queued;
    // Sending: something waits to go out, and neither a write completed nor a new one started.
    if (nowQueued > 0 && nowQueued === queued && nowWritten === written) {
      if (now - sendingSince >= timeoutMs) return stall(text.stallSending(seconds));
    } else {
      sendingSince = now;
    }
    written = nowWritten;
    queued = nowQueued;

    const nowRead = progress.received;
    // Silence counts once all we sent has left (the answer may wait for our last byte), and
    // while we are ready to take more: our own backpressure (a slow local reader) is not silence.
    const holdingBack = nowQueued > 0 || remote.isPaused() || remote.readableLength > 0 || local.output.writableLength > 0;
    if (localEnded && nowRead === read && !holdingBack) {
      if (now - silentSince >= timeoutMs) return stall(text.stallSilent(seconds));
    } else {
      silentSince = now;
    }
    read = nowRead;
  }, sampleInterval(timeoutMs));
  timer.unref();

  function stop(): void {
    clearInterval(timer);
    local.input.off('end', onLocalEnd);
  }
  function stall(reason: string): void {
    stop();
    remote.destroy(new StallError(reason));
  }
  return stop;
}
