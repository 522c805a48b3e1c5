/**
 * `burrow proxy --domain`: which names the local proxy tunnels. A domain covers itself and every
 * name under it, at a dot boundary (`corp.example.com` covers `git.corp.example.com`, not
 * `badcorp.example.com`); names compare case-insensitively, a trailing dot ignored.
 */
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { text } from '../output/messages.js';
import { isHostName } from './destination.js';

/** Parses one `--domain` value into its normal form: lower case, no trailing dot. */
export function parseDomain(input: string): string {
  const fail = (reason: string) => new UsageError(text.invalidDomain(input, reason), { hint: text.domainForm });
  const value = input.trim().toLowerCase();
  if (value === '' || value === '.') throw fail('it is empty');
  if (value.includes('*') || value.startsWith('.')) throw fail('wildcards are not needed: a domain covers every name under it');
  if (isIP(value.replace(/^\[(.*)\]$/, '$1')) !== 0 || /^[0-9.]+$/.test(value)) throw fail('it is an IP address; burrow proxy tunnels names only');
  if (value.includes(':') || value.includes('/')) throw fail('a domain has no scheme, port or path');
  if (!isHostName(value)) throw fail('it is not a valid DNS name');
  return value.replace(/\.$/, '');
}

/** The domains of `--domain …`, normalised, without repeats, in the order given. */
export function parseDomains(values: readonly string[]): string[] {
  if (values.length === 0) throw new UsageError(text.domainRequired, { hint: text.domainRequiredHint });
  return [...new Set(values.map(parseDomain))];
}

/**
 * Whether `host` (as destinations are normalised: lower case, no trailing dot) is `domain` or a
 * name under it. An IP address is under no domain.
 */
export function underDomain(host: string, domain: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (isIP(name) !== 0) return false;
  return name === domain || name.endsWith(`.${domain}`);
}
