/**
 * `burrow token <proxy>`: the raw JWT for <proxy> on stdout, one line and nothing else, signing
 * in first when there is no usable cached one (the same sign-in, store and cross-process lock as
 * every other command), for curl and other HTTP tools, as `gh auth token` and `cloudflared
 * access token` do. `--check` asks the proxy (its routes API) whether the cached token is still
 * good before printing it, and signs in again if it is not. With a service account
 * (BURROW_SERVICE_ACCOUNT, --service-account-file) that token is printed, never a sign-in.
 */
import type { Command } from 'commander';
import { checkToken } from '../../auth/verify.js';
import { AuthRequiredError } from '../../errors.js';
import { text } from '../../output/messages.js';
import { parseProxyOrigin } from '../destination.js';
import { addFlags } from '../flags.js';
import { serviceAccountToken, type ServiceAccountValues } from '../options.js';
import { commandLogger, proxyAccess, type ProxyAccessValues } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';

interface TokenValues extends ProxyAccessValues, ServiceAccountValues {
  check?: boolean;
}

const EXAMPLES = `
Examples:
  $ curl -H "Authorization: Bearer Pomerium-$(burrow token https://app.corp.example.com)" https://app.corp.example.com/api
  $ burrow token app.corp.example.com --check   # ask the proxy first; sign in again if it refuses the cached token
`;

export function registerToken(program: Command, runtime: Runtime): void {
  const token = program
    .command('token')
    .description('print the token for a proxy on stdout (signing in if needed), for curl and other HTTP tools')
    .argument('<proxy>', 'the proxy: a host name, https://host[:port], or the address of a page behind it');
  addFlags(token, 'token');
  token.addHelpText('after', EXAMPLES);
  token.action(async (input: string, values: TokenValues) => {
    const proxy = parseProxyOrigin(input, 'proxy');
    // Stdout is the token's: everything else (sign-in address, warnings) goes to stderr.
    const logger = commandLogger({}, runtime, 'warn');
    // A service account (BURROW_SERVICE_ACCOUNT, --service-account-file) is the token burrow would send: printed as is.
    const { tokens, route } = proxyAccess(proxy, values, runtime, logger, serviceAccountToken(values, runtime.env));
    const stop = new AbortController();
    const off = runtime.onSignal(() => stop.abort());
    try {
      let jwt = await tokens.get(proxy);
      if (jwt !== undefined && values.check) {
        const verdict = await checkToken({ proxy, route, signal: stop.signal }, jwt);
        if (!verdict.ok && !tokens.interactive) {
          const message = verdict.status === undefined ? verdict.problem : text.serviceAccountRejected(proxy.origin, verdict.status);
          throw new AuthRequiredError(message, { hint: text.serviceAccountRejectedHint });
        }
        if (!verdict.ok) jwt = await tokens.renew(proxy, jwt, stop.signal, verdict.status);
      }
      jwt ??= await tokens.renew(proxy, undefined, stop.signal);
      runtime.stdout.write(`${jwt}\n`);
    } finally {
      off();
    }
  });
}
