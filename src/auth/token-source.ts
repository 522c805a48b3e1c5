/**
 * Where tunnels and API calls get their token (credentials.ts implements it): a service
 * account, or cached sign-ins with a browser sign-in on demand.
 */
import type { ProxyEndpoint } from '../target.js';

export interface TokenSource {
  /** False for service accounts: a refused token is then an error, not a reason to sign in. */
  readonly interactive: boolean;
  get(proxy: ProxyEndpoint): Promise<string | undefined>;
  /**
   * Forgets `rejected` and returns a fresh token (signing in if no one else just did); `status`
   * is the proxy's refusal (302, 401), when there was one.
   */
  renew(proxy: ProxyEndpoint, rejected: string | undefined, signal?: AbortSignal, status?: number): Promise<string>;
}
