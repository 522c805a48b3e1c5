/**
 * Where a tunnel's token comes from, in order: a service account (never a browser), this
 * process's memory, the credential store (if not expired), and finally a browser sign-in, one
 * at a time per proxy across every burrow process (lock.ts). A token the proxy rejects (302/401)
 * is forgotten everywhere; every other error keeps it.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ProxyEndpoint } from '../target.js';
import { BurrowError, LoginError } from '../errors.js';
import type { Logger } from '../output/log.js';
import { text } from '../output/messages.js';
import type { CredentialStore, StoredCredential } from '../store/store.js';
import { isExpired, tokenInfo } from './jwt.js';
import { LockUnavailableError, type LockResult, withLock } from './lock.js';

export interface CredentialsOptions {
  /** A machine token: used as is, never replaced by a sign-in. */
  serviceAccount: string | undefined;
  /**
   * Opens the store on first use (the keychain is slow to load; service accounts never need it).
   * `peek` names the proxy about to be read, which spares a working keychain its probe.
   */
  store: (peek?: string) => Promise<CredentialStore>;
  /** Runs one interactive sign-in. */
  signIn: (proxy: ProxyEndpoint, signal?: AbortSignal) => Promise<string>;
  /** Directory for the cross-process lock files. */
  lockDir: string;
  /** How long one sign-in may take; waiters give up a little after that. */
  signInTimeoutMs: number;
  logger: Logger;
  now?: () => number;
}

export class Credentials {
  readonly #options: CredentialsOptions;
  readonly #now: () => number;
  /** Tokens known to this process, also when the store could not save them. */
  readonly #memory = new Map<string, StoredCredential>();
  /** In-flight sign-ins per proxy: concurrent tunnels of one process share one. */
  readonly #signingIn = new Map<string, Promise<string>>();
  #store: Promise<CredentialStore> | undefined;
  #warnedUnwritable = false;

  constructor(options: CredentialsOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** True when a 302/401 can be answered with a browser sign-in. */
  get interactive(): boolean {
    return this.#options.serviceAccount === undefined;
  }

  #openStore(peek?: string): Promise<CredentialStore> {
    this.#store ??= this.#options.store(peek);
    return this.#store;
  }

  /** A usable token for `proxy`, or undefined (then the proxy decides: public route or 302). */
  async get(proxy: ProxyEndpoint): Promise<string | undefined> {
    if (this.#options.serviceAccount !== undefined) return this.#options.serviceAccount;
    const cached = await this.#cached(proxy.origin);
    return cached?.token;
  }

  async #cached(origin: string): Promise<StoredCredential | undefined> {
    const now = this.#now();
    const inMemory = this.#memory.get(origin);
    if (inMemory && !isExpired(inMemory.expiresAt, now)) return inMemory;
    const stored = await (await this.#openStore(origin)).get(origin).catch(() => undefined);
    if (stored && !isExpired(stored.expiresAt, now)) {
      this.#memory.set(origin, stored);
      return stored;
    }
    return undefined;
  }

  /**
   * The proxy said `rejected` is no good (or there was none): forget it and get a fresh token,
   * signing in unless another tunnel or process already did. `status` is the proxy's answer
   * (302, 401), for the line that says why a sign-in starts.
   */
  renew(proxy: ProxyEndpoint, rejected: string | undefined, signal?: AbortSignal, status?: number): Promise<string> {
    const origin = proxy.origin;
    // Registered synchronously, before any await, so concurrent tunnels all join this one.
    const pending = this.#signingIn.get(origin);
    if (pending) return pending;
    const flight = (async () => {
      const current = await this.#cached(origin);
      if (current && current.token !== rejected) return current.token;
      if (rejected !== undefined) {
        // Said before the browser opens, so a sign-in out of the blue has its reason on screen.
        this.#options.logger.notice(text.cachedSignInRefused(origin, status));
        await this.forget(origin, rejected);
      }
      return this.#signInOnce(proxy, signal);
    })().finally(() => this.#signingIn.delete(origin));
    this.#signingIn.set(origin, flight);
    return flight;
  }

  /** Signs in now whatever is cached (`burrow login`), still one prompt across processes. */
  signInNow(proxy: ProxyEndpoint, signal?: AbortSignal): Promise<string> {
    return this.#signInOnce(proxy, signal);
  }

  /** Forgets a rejected token, in memory and in the store (only if it is still that token). */
  async forget(origin: string, token: string): Promise<void> {
    if (this.#memory.get(origin)?.token === token) this.#memory.delete(origin);
    const store = await this.#openStore();
    const stored = await store.get(origin).catch(() => undefined);
    if (stored?.token === token) await store.delete(origin).catch(() => false);
  }

  async #signInOnce(proxy: ProxyEndpoint, signal?: AbortSignal): Promise<string> {
    try {
      return await this.#signInLocked(proxy, signal);
    } catch (error) {
      // Ctrl-C while waiting for the lock (or anywhere before the sign-in itself) surfaces as a bare
      // AbortError: it is an interruption, not "unexpected error … this is a bug".
      if (signal?.aborted && !(error instanceof BurrowError)) {
        throw new LoginError('BURROW_LOGIN_ABORTED', text.loginAborted(proxy.origin), { cause: error });
      }
      throw error;
    }
  }

  async #signInLocked(proxy: ProxyEndpoint, signal?: AbortSignal): Promise<string> {
    const origin = proxy.origin;
    const lockPath = join(this.#options.lockDir, `${createHash('sha256').update(origin).digest('hex').slice(0, 32)}.lock`);
    const timeoutMs = this.#options.signInTimeoutMs;
    const started = this.#now();
    const signIn = async () => {
      // Another process may have finished just before we took the lock.
      const fresh = await this.#storedSince(origin, started);
      if (fresh) return fresh;
      const token = await this.#options.signIn(proxy, signal);
      await this.#remember(origin, token);
      return token;
    };
    const result: LockResult<string> = await withLock(
      lockPath,
      {
        timeoutMs: timeoutMs + 15_000,
        staleAfterMs: timeoutMs + 60_000,
        signal,
        now: this.#now,
        onWait: (owner) => this.#options.logger.notice(text.waitingForOtherSignIn(origin, owner.pid)),
      },
      signIn,
      () => this.#storedSince(origin, started),
      (owner) =>
        new LoginError('BURROW_LOCK_TIMEOUT', text.lockTimedOut(origin, owner.pid, Math.round((this.#now() - started) / 1000)), {
          hint: text.lockTimedOutHint,
        }),
    ).catch(async (error: unknown) => {
      // The lock only spares other processes a second prompt; a cache directory that cannot
      // hold it (full, read-only) must not stop this sign-in. Saving the token will fail there
      // too, and that says so once.
      if (!(error instanceof LockUnavailableError)) throw error;
      this.#options.logger.debug(error.message);
      return { acquired: true, value: await signIn() };
    });
    if (!result.acquired) this.#memory.set(origin, this.#fromToken(origin, result.value));
    return result.value;
  }

  /** A token some process stored after `since` (ours or another's), if still usable. */
  async #storedSince(origin: string, since: number): Promise<string | undefined> {
    const stored = await (await this.#openStore()).get(origin).catch(() => undefined);
    return stored && stored.storedAt >= since && !isExpired(stored.expiresAt, this.#now()) ? stored.token : undefined;
  }

  #fromToken(origin: string, token: string): StoredCredential {
    const info = tokenInfo(token);
    return { proxy: origin, token, expiresAt: info.expiresAt, user: info.user, storedAt: this.#now() };
  }

  /** Keeps a fresh token in memory and, if it can, in the store (one warning if it cannot). */
  async #remember(origin: string, token: string): Promise<void> {
    const credential = this.#fromToken(origin, token);
    this.#memory.set(origin, credential);
    try {
      await (await this.#openStore()).set(credential);
    } catch (error) {
      if (!this.#warnedUnwritable) {
        this.#warnedUnwritable = true;
        // Store errors already say what failed where ("cannot save the sign-in to …: …").
        this.#options.logger.warn(text.credentialKeptInMemory((error as Error).message));
      }
    }
  }
}
