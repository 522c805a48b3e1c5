/** `burrow logout [proxy-url]` forgets one or every cached sign-in. */
import type { Command } from 'commander';
import { text } from '../../output/messages.js';
import { parseProxyUrl } from '../destination.js';
import { addFlags } from '../flags.js';
import { commandLogger } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

export function registerLogout(program: Command, runtime: Runtime): void {
  const logout = program
    .command('logout')
    .description('forget the cached sign-in for a proxy, or every cached sign-in')
    .argument('[proxy-url]', 'the proxy to sign out of (default: all)');
  addFlags(logout, 'logout');
  logout.action(async (url: string | undefined, values: SignInValues) => {
    const logger = commandLogger({}, runtime, 'info');
    // Validated before the store is opened: its fallback warning must not precede a usage error.
    const proxy = url === undefined ? undefined : parseProxyUrl(url, 'proxy URL');
    const store = await storeOpener(signInSettings(values), runtime, logger)();
    if (proxy === undefined) {
      logger.notice(text.loggedOutAll(await store.clear()));
      return;
    }
    if (await store.delete(proxy.origin)) {
      logger.notice(text.loggedOut(proxy.origin));
    } else {
      logger.notice(text.notSignedIn(proxy.origin));
    }
  });
}
