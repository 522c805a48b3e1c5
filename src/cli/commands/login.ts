/** `burrow login <proxy-url>` signs in ahead of time (`logout.ts` forgets sign-ins). */
import type { Command } from 'commander';
import { tokenInfo } from '../../auth/jwt.js';
import { checkToken } from '../../auth/verify.js';
import { formatExpiry } from '../../output/format.js';
import { text } from '../../output/messages.js';
import { parseProxyOrigin, parseProxyUrl } from '../destination.js';
import { addFlags } from '../flags.js';
import { commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface LoginValues extends ProxyAccessValues, LogValues {
  force?: boolean;
}

export function registerLogin(program: Command, runtime: Runtime): void {
  const login = program
    .command('login')
    .description('sign in to a proxy now and cache the token (later tunnels use it silently)')
    .argument('<proxy>', 'the proxy: a host name, https://host[:port], or the address of a page behind it');
  addFlags(login, 'login');
  login.addHelpText(
    'after',
    '\nExamples:\n  $ burrow login https://git.corp.example.com\n  $ burrow login git.corp.example.com --force   # sign in again, even when still signed in\n',
  );
  login.action(async (input: string, values: LoginValues) => {
    const proxy = parseProxyOrigin(input, 'proxy');
    const logger = commandLogger(values, runtime, 'info');
    const { tokens: credentials, route } = proxyAccess(proxy, values, runtime, logger);
    const stop = new AbortController();
    const off = runtime.onSignal(() => stop.abort());
    try {
      const cached = values.force ? undefined : await credentials.get(proxy);
      if (cached !== undefined) {
        // A cached token is only as good as the proxy says (it may have been revoked, or the
        // proxy's key rotated): ask it, as the tunnel would find out.
        const verdict = await checkToken({ proxy, route, signal: stop.signal }, cached);
        if (verdict.ok) {
          const info = tokenInfo(cached);
          logger.notice(text.alreadySignedIn(proxy.origin, info.user, formatExpiry(info.expiresAt, Date.now())));
          return;
        }
        logger.notice(text.cachedSignInRefused(proxy.origin, verdict.status));
        await credentials.forget(proxy.origin, cached);
      }
      const token = await credentials.signInNow(proxy, stop.signal);
      const info = tokenInfo(token);
      logger.notice(text.signedIn(proxy.origin, info.user, formatExpiry(info.expiresAt, Date.now())));
    } finally {
      off();
    }
  });
}
