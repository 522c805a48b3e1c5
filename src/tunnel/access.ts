/**
 * Everything a command needs to reach one identity-aware proxy, whatever it does there (open
 * tunnels, sign in, call its API): the proxy, how requests travel (route options), where
 * tokens come from, and where lines go. Built once per command (cli/proxy-access.ts) and
 * shared by everything that command opens.
 */
import type { Credentials } from '../auth/credentials.js';
import type { RouteOptions } from '../net/route.js';
import type { Logger } from '../output/log.js';
import type { ProxyEndpoint } from '../target.js';

export interface ProxyAccess {
  readonly proxy: ProxyEndpoint;
  readonly route: RouteOptions;
  readonly tokens: Credentials;
  readonly logger: Logger;
}
