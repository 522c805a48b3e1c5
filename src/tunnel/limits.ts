/**
 * Bounded sessions: Pomerium checks a route's policy only when a tunnel
 * opens and never cuts a long-lived stream, so a user (or their security team) can have burrow
 * close each tunnel at a given age (`--max-duration`) or when the token it was opened with
 * expires (`--close-on-token-expiry`). One timer per tunnel, nothing on the data path.
 */
import { tokenInfo } from '../auth/jwt.js';
import { SessionLimitError } from '../errors.js';
import { duration } from '../output/format.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';

export interface SessionLimits {
  /** Close each tunnel this many ms after the proxy let it through. */
  maxDurationMs?: number | undefined;
  /** `--max-duration` as the user spelled it, for the message. */
  maxDurationLabel?: string | undefined;
  /** Close each tunnel when the token it was opened with expires (its `exp`, less the skew margin). */
  closeOnTokenExpiry?: boolean | undefined;
}

export interface LimitContext {
  /** The token the tunnel was opened with (undefined: a public route, nothing expires). */
  token: string | undefined;
  dest: string;
  logger: Logger;
  now?: () => number;
}

/** setTimeout holds at most 2^31 - 1 ms; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Arms the timers for one open tunnel. `close` is called at most once, with the error that says
 * which limit was reached. Returns a function that disarms them (call it when the tunnel ends).
 */
export function armLimits(limits: SessionLimits | undefined, context: LimitContext, close: (error: SessionLimitError) => void): () => void {
  if (!limits || (limits.maxDurationMs === undefined && !limits.closeOnTokenExpiry)) return () => {};
  const now = context.now ?? Date.now;
  const opened = now();
  const timers: NodeJS.Timeout[] = [];
  let fired = false;
  const fire = (error: SessionLimitError) => {
    if (fired) return;
    fired = true;
    for (const timer of timers) clearTimeout(timer);
    close(error);
  };
  const at = (deadline: number, make: () => SessionLimitError) => {
    const wait = () => {
      const left = deadline - now();
      if (left <= 0) return fire(make());
      timers.push(setTimeout(wait, Math.min(left, MAX_TIMER_MS)));
    };
    wait();
  };

  if (limits.maxDurationMs !== undefined) {
    const label = limits.maxDurationLabel ?? `${limits.maxDurationMs / 1000}s`;
    at(opened + limits.maxDurationMs, () =>
      new SessionLimitError(text.sessionLimitReached(context.dest, label), { hint: text.sessionLimitHint }),
    );
  }
  if (limits.closeOnTokenExpiry && context.token !== undefined) {
    const expiresAt = tokenInfo(context.token).expiresAt;
    if (expiresAt === undefined) {
      context.logger.debug(text.tokenWithoutExpiry(context.dest));
    } else {
      at(expiresAt * 1000, () => {
        const age = duration(Math.round((now() - opened) / 1000));
        return new SessionLimitError(text.tokenExpiredClose(context.dest, age), { hint: text.tokenExpiredCloseHint });
      });
    }
  }
  return () => {
    fired = true;
    for (const timer of timers) clearTimeout(timer);
  };
}
