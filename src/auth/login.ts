/**
 * Browser sign-in (docs/protocol.md "Sign-in"): a loopback callback server, the proxy's login API
 * for the sign-in URL, the browser (or a printed URL), and the token coming back, either to the
 * callback or pasted on the terminal by a user whose browser is on another device.
 *
 * The login API call travels the same dial path as tunnels (src/net/api-client.ts), so TLS flags
 * and forward proxies apply to it too. The pasted token is read and checked in paste.ts.
 */
import { BurrowError, LoginError } from '../errors.js';
import { proxyApiClient } from '../net/api-client.js';
import type { RouteOptions } from '../net/route.js';
import type { ProxyEndpoint } from '../target.js';
import type { Logger } from '../output/log.js';
import { duration } from '../output/format.js';
import { text } from '../output/messages.js';
import { type BrowserOptions, browserName, chooseBrowser, openUrl } from './browser.js';
import { startCallbackServer } from './callback.js';
import { readPastedToken } from './paste.js';
import { checkToken } from './verify.js';

export interface SignInOptions {
  proxy: ProxyEndpoint;
  /** TLS, forward proxy and time allowed: sign-in calls go the same way as tunnels. */
  route: RouteOptions;
  browser: BrowserOptions;
  /** How long to wait for the user. */
  timeoutMs: number;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  signal?: AbortSignal | undefined;
  /** Read a pasted address from the terminal (/dev/tty); off in tests and when there is none. */
  paste?: boolean;
}

const LOGIN_PATH = '/.pomerium/api/v1/login';
const MAX_LOGIN_BODY = 16 * 1024;

/** Asks the proxy where to sign in: `GET /.pomerium/api/v1/login?pomerium_redirect_uri=…`. */
export async function fetchSignInUrl(options: SignInOptions, redirectUri: string): Promise<string> {
  const client = await proxyApiClient(options.proxy, options.route, options.signal);
  try {
    const path = `${LOGIN_PATH}?${new URLSearchParams({ pomerium_redirect_uri: redirectUri })}`;
    const response = await client.request({ method: 'GET', path, signal: options.signal });
    let body = '';
    for await (const chunk of response.body) {
      body += (chunk as Buffer).toString('utf8');
      if (body.length > MAX_LOGIN_BODY) break;
    }
    const origin = options.proxy.origin;
    if (response.statusCode !== 200) {
      throw new LoginError('BURROW_LOGIN_FAILED', text.loginApiStatus(origin, response.statusCode), { hint: text.loginApiHint });
    }
    const url = body.trim();
    if (!/^https?:\/\/\S+$/.test(url) || body.length > MAX_LOGIN_BODY) {
      throw new LoginError('BURROW_LOGIN_FAILED', text.loginApiBody(origin), { hint: text.loginApiHint });
    }
    return url;
  } catch (error) {
    if (error instanceof BurrowError) throw error;
    if (options.signal?.aborted) throw aborted(options.proxy);
    throw new LoginError('BURROW_LOGIN_FAILED', text.loginApiFailed(options.proxy.origin, (error as Error).message), {
      hint: text.loginApiHint,
      cause: error,
    });
  } finally {
    void client.close().catch(() => {});
  }
}

function aborted(proxy: ProxyEndpoint): LoginError {
  return new LoginError('BURROW_LOGIN_ABORTED', text.loginAborted(proxy.origin));
}

/** Runs one browser sign-in against `options.proxy` and resolves with the token. */
export async function signIn(options: SignInOptions): Promise<string> {
  const { proxy, logger } = options;
  const callback = await startCallbackServer(proxy.origin);
  const cleanups: Array<() => void> = [() => callback.close()];
  try {
    const signInUrl = await fetchSignInUrl(options, callback.url);
    const choice = chooseBrowser(options.browser, options.env);
    const launch = await openUrl(choice, signInUrl, options.env);
    const waitSeconds = Math.round(options.timeoutMs / 1000);
    const wait = duration(waitSeconds);
    const paste = options.paste
      ? readPastedToken({ callbackUrl: callback.url, logger, check: (token) => checkToken(options, token) })
      : undefined;
    if (paste) cleanups.push(paste.close);
    const instructions = () => logger.notice(paste ? text.pasteInstructions(wait) : text.waitingForBrowser(wait));
    if (!launch.started && launch.reason) logger.warn(text.browserFailed(browserName(choice), launch.reason));
    // Printed even at --log-level error, with the address whether a browser was started or not:
    // a started one may never show (ssh -X, WSL, a broken xdg-open).
    logger.event({ event: 'sign_in', proxy: proxy.origin, url: signInUrl, browser_opened: launch.started, wait_s: waitSeconds });
    if (launch.started) {
      // Only while a browser is believed open: with a printed address the user may be pasting here.
      const stopSpinner = logger.spinner(text.waitingForSignInSpinner);
      let settled = false;
      cleanups.push(() => {
        settled = true;
        stopSpinner();
      });
      void launch.failure.then((reason) => {
        if (settled) return;
        stopSpinner();
        logger.warn(text.browserFailed(browserName(choice), reason));
        instructions();
      });
    } else {
      instructions();
    }
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LoginError('BURROW_LOGIN_TIMEOUT', text.loginTimedOut(proxy.origin, wait), { hint: text.loginTimedOutHint })),
        options.timeoutMs,
      );
      onAbort = () => reject(aborted(proxy));
      if (options.signal?.aborted) onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
    });
    cleanups.push(() => {
      clearTimeout(timer);
      if (onAbort) options.signal?.removeEventListener('abort', onAbort);
    });
    return await Promise.race([callback.token, ...(paste ? [paste.token] : []), stop]);
  } finally {
    for (const cleanup of cleanups) cleanup();
  }
}
