/**
 * Builds the token source for commands that talk to a proxy: service account, or cached
 * sign-ins with browser sign-in on demand. Sign-in code (http server, browser launching, undici)
 * and the keychain are loaded only when needed: a connection with a cached token never loads them.
 */
import { join } from 'node:path';
import { Credentials } from '../auth/credentials.js';
import { LoginError } from '../errors.js';
import { text } from '../output/messages.js';
import type { BrowserOptions } from '../auth/browser.js';
import type { RouteOptions } from '../net/route.js';
import type { Logger } from '../output/log.js';
import { cacheDir } from '../store/cache-dir.js';
import { selectStore } from '../store/select.js';
import type { CredentialStore } from '../store/store.js';
import { parseSeconds } from './options.js';
import type { Runtime } from './runtime.js';

export interface SignInValues {
  browserCmd?: string;
  /** commander's negated flag: false when --no-browser was given. */
  browser?: boolean;
  /** Absent for the commands that never sign in (status, logout, cache): they take no --login-timeout. */
  loginTimeout?: string | undefined;
  credentialStore?: 'keychain' | 'file';
}

export interface SignInSettings {
  browser: BrowserOptions;
  timeoutMs: number;
  storeChoice: 'keychain' | 'file' | undefined;
}

/** --login-timeout's default (commander's too: flags.ts takes it from here). */
export const DEFAULT_LOGIN_TIMEOUT = '300';

export function signInSettings(values: SignInValues): SignInSettings {
  return {
    browser: { browserCmd: values.browserCmd, noBrowser: values.browser === false },
    timeoutMs: parseSeconds('--login-timeout', values.loginTimeout ?? DEFAULT_LOGIN_TIMEOUT, { min: 1, max: 86_400 }),
    storeChoice: values.credentialStore,
  };
}

/**
 * Opens the credential store the user chose (or the best available), once. With
 * `announce: 'on-save'` the one line about falling back from the keychain is held until a token
 * is actually saved: a ProxyCommand that only reads a cached token should not print it on every
 * ssh. (selectStore itself says the fallback only when a token is first saved; held here are
 * lines about damaged credential files.) Commands about the store itself say those at once.
 */
export function storeOpener(
  settings: SignInSettings,
  runtime: Runtime,
  logger: Logger,
  announce: 'on-open' | 'on-save' = 'on-open',
): (peek?: string) => Promise<CredentialStore> {
  let store: Promise<CredentialStore> | undefined;
  const held: string[] = [];
  let saving = false;
  // What the store says while saving (the keychain fallback, selectStore) is said at once.
  const warn = (line: string) => (announce === 'on-open' || saving ? logger.warn(line) : held.push(line));
  const open = async (peek: string | undefined): Promise<CredentialStore> => {
    const inner = await selectStore({ choice: settings.storeChoice, env: runtime.env, warn, warnNow: (line) => logger.warn(line), peek });
    if (announce === 'on-open') return inner;
    // The same store, whose first save says what was held.
    return {
      kind: inner.kind,
      location: () => inner.location(),
      get: (proxy) => inner.get(proxy),
      set: async (credential) => {
        saving = true;
        for (const line of held.splice(0)) logger.warn(line);
        return inner.set(credential);
      },
      delete: (proxy) => inner.delete(proxy),
      list: () => inner.list(),
      clear: () => inner.clear(),
    };
  };
  return (peek) => (store ??= open(peek));
}

/**
 * One token source per proxy, shared by every tunnel of one process (`burrow up`): a sign-in
 * started for one tunnel serves every other tunnel to the same proxy, and their tokens are the
 * same. (The sign-in lock only keeps other processes from prompting; within a process only one
 * `Credentials` per proxy keeps two tunnels from prompting at once.) The first tunnel to reach
 * a proxy decides how its sign-ins run (browser, time allowed, TLS); they speak on `logger`.
 */
export class CredentialsPool {
  readonly #byOrigin = new Map<string, Credentials>();

  constructor(readonly logger: Logger) {}

  /** The proxy's token source, made by `make` (given the pool's logger) on first use. */
  for(origin: string, make: (logger: Logger) => Credentials): Credentials {
    let credentials = this.#byOrigin.get(origin);
    if (credentials === undefined) this.#byOrigin.set(origin, (credentials = make(this.logger)));
    return credentials;
  }
}

export function createCredentials(options: {
  serviceAccount: string | undefined;
  settings: SignInSettings;
  route: RouteOptions;
  runtime: Runtime;
  logger: Logger;
}): Credentials {
  const { settings, runtime, logger } = options;
  return new Credentials({
    serviceAccount: options.serviceAccount,
    store: storeOpener(settings, runtime, logger, 'on-save'),
    lockDir: join(cacheDir(runtime.env), 'locks'),
    signInTimeoutMs: settings.timeoutMs,
    logger,
    signIn: async (proxy, signal) => {
      const [{ signIn }, { chooseBrowser }] = await Promise.all([import('../auth/login.js'), import('../auth/browser.js')]);
      // Nobody can sign in (cron, CI, an IDE's background fetch): say so now, not after
      // --login-timeout. With a terminal, a browser on another device can still do it.
      const choice = chooseBrowser(settings.browser, runtime.env);
      if (choice.kind === 'none' && !runtime.interactiveTerminal) {
        throw new LoginError('BURROW_LOGIN_UNAVAILABLE', text.noWayToSignIn(proxy.origin, text.noBrowserBecause(choice.reason)), {
          hint: text.noWayToSignInHint(proxy.origin),
        });
      }
      return signIn({
        proxy,
        route: options.route,
        browser: settings.browser,
        timeoutMs: settings.timeoutMs,
        logger,
        env: runtime.env,
        signal,
        paste: runtime.interactiveTerminal,
      });
    },
  });
}
