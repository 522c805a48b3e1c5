/**
 * What the listeners (tcp.ts, udp.ts) share about the address they bind and the descriptors
 * they may use: one mapping from a bind error to the line and hint users see, and one budget of
 * the descriptors this process's open-files limit leaves its tunnels.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { ListenError } from '../errors.js';
import { errorWords, text } from '../output/messages.js';

/** Why binding `where` (`host:port`) failed, as the error users see, with the fix for its kind. */
export function listenFailure(where: string, error: NodeJS.ErrnoException): ListenError {
  const hint =
    error.code === 'EADDRINUSE'
      ? text.listenInUseHint
      : error.code === 'EACCES'
        ? text.listenPermissionHint
        : error.code === 'EADDRNOTAVAIL'
          ? text.listenNotLocalHint
          : text.listenGenericHint;
  return new ListenError(text.listenFailed(where, errorWords(error.code ?? '', error.message)), { hint, cause: error });
}

/**
 * Descriptors kept free beyond the tunnels: a sign-in (callback server, browser pipes, lock and
 * credential files, the keychain's D-Bus socket) and name lookups use a few for a moment.
 */
const FD_SLACK = 16;

/**
 * The descriptors this process's tunnels may hold, shared by every listener it runs (`burrow up`
 * serves several from one open-files limit): a TCP tunnel takes two (the local connection and
 * the proxy's), a UDP session one (its connection to the proxy; the local socket is shared).
 * A tunnel that does not fit is a reported refusal: without a budget, running out of descriptors
 * shows as connections closed without a word (libuv accepts and closes them) or dials that fail.
 */
export class DescriptorBudget {
  #free: number;
  #open = 0;

  /** `free`: descriptors left for tunnels under the open-files limit `limit`. */
  constructor(
    readonly limit: number,
    free: number,
  ) {
    this.#free = free;
  }

  /**
   * Counted from the descriptors the process holds now (Linux only; elsewhere, or when the
   * limit is unlimited or unreadable, undefined: no budget).
   */
  static measure(): DescriptorBudget | undefined {
    if (process.platform !== 'linux') return undefined;
    try {
      const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
      if (soft === undefined) return undefined;
      const limit = Number(soft);
      return new DescriptorBudget(limit, Math.max(2, limit - readdirSync('/proc/self/fd').length - FD_SLACK));
    } catch {
      return undefined;
    }
  }

  /** Tunnels holding descriptors now, across every listener. */
  get open(): number {
    return this.#open;
  }

  /** Takes `descriptors` for one tunnel; false (nothing taken) when they are not left. */
  take(descriptors: number): boolean {
    if (descriptors > this.#free) return false;
    this.#free -= descriptors;
    this.#open++;
    return true;
  }

  /** Gives back what one tunnel's {@link take} took. */
  release(descriptors: number): void {
    this.#free += descriptors;
    this.#open--;
  }

  /** Sets aside `descriptors` outside any tunnel (a listener's own socket), as far as they are left. */
  reserve(descriptors: number): void {
    this.#free = Math.max(0, this.#free - descriptors);
  }

  /** Gives back what {@link reserve} set aside (a listener closed). */
  unreserve(descriptors: number): void {
    this.#free += descriptors;
  }
}
