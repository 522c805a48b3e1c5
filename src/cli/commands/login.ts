/** `burrow login <proxy-url>` signs in ahead of time (`logout.ts` forgets sign-ins). */
import type { Command } from 'commander';
import { tokenInfo } from '../../auth/jwt.js';
import { formatExpiry } from '../../output/format.js';
import { text } from '../../output/messages.js';
import { parseProxyUrl } from '../destination.js';
import { addFlags } from '../flags.js';
import { commandLogger, type LogValues, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface LoginValues extends ProxyAccessValues, LogValues {}

export function registerLogin(program: Command, runtime: Runtime): void {
  const login = program
    .command('login')
    .description('sign in to a proxy now and cache the token (later tunnels use it silently)')
    .argument('<proxy-url>', 'the proxy, e.g. https://proxy.corp.example.com');
  addFlags(login, 'login');
  login.addHelpText('after', '\nExample:\n  $ burrow login https://git.corp.example.com\n');
  login.action(async (url: string, values: LoginValues) => {
    const proxy = parseProxyUrl(url, 'proxy URL');
    const logger = commandLogger(values, runtime, 'info');
    const { tokens: credentials } = proxyAccess(proxy, values, runtime, logger);
    const stop = new AbortController();
    const off = runtime.onSignal(() => stop.abort());
    try {
      const token = await credentials.signInNow(proxy, stop.signal);
      const info = tokenInfo(token);
      logger.notice(text.signedIn(proxy.origin, info.user, formatExpiry(info.expiresAt, Date.now())));
    } finally {
      off();
    }
  });
}
