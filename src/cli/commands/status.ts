/**
 * `burrow status [proxy-url] [--json]`: what is cached (proxy, user, expiry; never a token), and
 * whether it is usable, as the exit code says: 0 when there is a usable sign-in (for the proxy
 * asked, or for any), 3 (`BURROW_NOT_SIGNED_IN`) when not, as `gh auth status` does. A person gets
 * one line per sign-in on stderr; `--json` puts the data on stdout.
 */
import type { Command } from 'commander';
import { isExpired } from '../../auth/jwt.js';
import { NotSignedInError } from '../../errors.js';
import { formatExpiry } from '../../output/format.js';
import { text } from '../../output/messages.js';
import { summarize } from '../../store/file.js';
import type { CredentialSummary } from '../../store/store.js';
import { parseProxyUrl } from '../destination.js';
import { addFlags } from '../flags.js';
import { commandLogger } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

interface StatusValues extends SignInValues {
  json?: boolean;
}

/** One sign-in as `--json` shows it: the field names are part of the documented contract (docs/json-events.md). */
export interface SignInJson {
  proxy: string;
  /** The token's `email` (else `sub`) claim; null when it names nobody. */
  user: string | null;
  /** When burrow stops using the token (its `exp` less the clock-skew margin), ISO 8601; null without `exp`. */
  expires_at: string | null;
  expired: boolean;
}

export function signInJson(entry: CredentialSummary, nowMs: number): SignInJson {
  return {
    proxy: entry.proxy,
    user: entry.user ?? null,
    expires_at: entry.expiresAt === undefined ? null : new Date(entry.expiresAt * 1000).toISOString(),
    expired: isExpired(entry.expiresAt, nowMs),
  };
}

export function registerStatus(program: Command, runtime: Runtime): void {
  const status = program
    .command('status')
    .description('list cached sign-ins: proxy, user, expiry (never the token); exit 3 when none is usable')
    .argument('[proxy-url]', 'only this proxy (exit 3 unless it has a usable sign-in)');
  addFlags(status, 'status');
  status.addHelpText('after', '\nExamples:\n  $ burrow status\n  $ burrow status https://git.corp.example.com || burrow login https://git.corp.example.com\n  $ burrow status --json | jq -r \'.sign_ins[] | select(.expired | not) | .proxy\'\n');
  status.action(async (url: string | undefined, values: StatusValues) => {
    const logger = commandLogger({ json: values.json }, runtime, 'warn');
    // Validated before the store is opened: its fallback warning must not precede a usage error.
    const proxy = url === undefined ? undefined : parseProxyUrl(url, 'proxy URL');
    const store = await storeOpener(signInSettings(values), runtime, logger)(proxy?.origin);
    let entries: CredentialSummary[];
    if (proxy === undefined) {
      entries = await store.list();
    } else {
      const stored = await store.get(proxy.origin);
      entries = stored === undefined ? [] : [summarize(stored)];
    }
    const now = Date.now();
    if (values.json) {
      const data = { store: store.kind, location: store.location(), sign_ins: entries.map((e) => signInJson(e, now)) };
      runtime.stdout.write(`${JSON.stringify(data)}\n`);
    } else {
      // The logger escapes what a stored field could hold (an older burrow's entry, a hand edit).
      for (const e of entries) {
        const expiry = formatExpiry(e.expiresAt, now);
        logger.notice(isExpired(e.expiresAt, now) ? text.signInExpired(e.proxy, e.user, expiry) : text.signedIn(e.proxy, e.user, expiry));
      }
      if (entries.length > 0) logger.notice(text.signInsKeptIn(store.location()));
    }
    if (entries.some((e) => !isExpired(e.expiresAt, now))) return;
    const message = proxy ? text.notSignedIn(proxy.origin) : entries.length === 0 ? text.noSignInsIn(store.location()) : text.allSignInsExpired;
    throw new NotSignedInError(message, { hint: text.notSignedInHint(proxy?.origin) });
  });
}
