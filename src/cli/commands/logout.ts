/**
 * `burrow logout [proxy-url] [--browser] [--json]` forgets one or every cached sign-in.
 *
 * Forgetting the token is not enough to sign in as someone else: a real Pomerium keeps its own
 * session in the browser (a cookie), so the next sign-in comes straight back as the same user.
 * `--browser` also opens the proxy's sign-out page (`/.pomerium/sign_out`), which ends that session.
 */
import type { Command } from 'commander';
import { browserName, chooseBrowser, openUrl } from '../../auth/browser.js';
import { UsageError } from '../../errors.js';
import type { Logger } from '../../output/log.js';
import { signOutUrl, text } from '../../output/messages.js';
import type { ProxyEndpoint } from '../../target.js';
import { parseProxyUrl } from '../destination.js';
import { addFlags } from '../flags.js';
import { commandLogger } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

interface LogoutValues extends SignInValues {
  json?: boolean;
}

/**
 * Forgets the cached sign-in for `proxy`, or every one when it is undefined, saying so on
 * stderr unless `values.json`; returns the origins forgotten. (`burrow k8s flush-credentials` too.)
 */
export async function forgetSignIns(proxy: ProxyEndpoint | undefined, values: SignInValues & { json?: boolean }, runtime: Runtime, logger: Logger): Promise<string[]> {
  const store = await storeOpener(signInSettings(values), runtime, logger)();
  if (proxy === undefined) {
    const origins = (await store.list()).map((e) => e.proxy);
    const count = await store.clear();
    if (!values.json) logger.notice(text.loggedOutAll(count));
    return origins;
  }
  if (await store.delete(proxy.origin)) {
    if (!values.json) logger.notice(text.loggedOut(proxy.origin));
    return [proxy.origin];
  }
  if (!values.json) logger.notice(text.notSignedIn(proxy.origin));
  return [];
}

export function registerLogout(program: Command, runtime: Runtime): void {
  const logout = program
    .command('logout')
    .description('forget the cached sign-in for a proxy, or every cached sign-in')
    .argument('[proxy-url]', 'the proxy to sign out of (default: all)');
  addFlags(logout, 'logout');
  logout.addHelpText('after', '\nExamples:\n  $ burrow logout https://git.corp.example.com\n  $ burrow logout --browser https://git.corp.example.com   # to sign in as someone else\n');
  logout.action(async (url: string | undefined, values: LogoutValues) => {
    const logger = commandLogger({ json: values.json }, runtime, 'info');
    // Validated before the store is opened: its fallback warning must not precede a usage error.
    const proxy = url === undefined ? undefined : parseProxyUrl(url, 'proxy URL');
    // `--browser` and `--no-browser` share commander's `browser`: true only when --browser was given last.
    const browser = values.browser === true;
    if (browser && proxy === undefined) throw new UsageError(text.logoutBrowserNeedsProxy, { hint: text.logoutBrowserNeedsProxyHint });
    const result: { signed_out: string[]; sign_out_url?: string; browser_opened?: boolean } = {
      signed_out: await forgetSignIns(proxy, values, runtime, logger),
    };
    if (browser && proxy !== undefined) {
      const page = signOutUrl(proxy.origin);
      const choice = chooseBrowser(signInSettings(values).browser, runtime.env);
      const launch = await openUrl(choice, page, runtime.env);
      const opened = launch.started;
      if (!launch.started && launch.reason !== undefined) logger.warn(text.signOutBrowserFailed(browserName(choice), launch.reason));
      result.sign_out_url = page;
      result.browser_opened = opened;
      // Printed also with --json when no browser opened: a person must see it to finish.
      if (opened) {
        if (!values.json) logger.notice(text.signOutOpened(proxy.origin, page));
      } else {
        logger.notice(text.signOutPrinted(proxy.origin, page));
      }
    }
    if (values.json) runtime.stdout.write(`${JSON.stringify(result)}\n`);
  });
}
