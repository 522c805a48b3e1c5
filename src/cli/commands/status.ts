/** `burrow status`: what is cached (proxy, user, expiry; never a token). */
import type { Command } from 'commander';
import { formatExpiry, printableLine, table } from '../../output/format.js';
import { text } from '../../output/messages.js';
import { addFlags } from '../flags.js';
import { commandLogger } from '../proxy-access.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

export function registerStatus(program: Command, runtime: Runtime): void {
  const status = program.command('status').description('list cached sign-ins: proxy, user, expiry (never the token)');
  addFlags(status, 'status');
  status.action(async (values: SignInValues) => {
    const store = await storeOpener(signInSettings(values), runtime, commandLogger({}, runtime, 'warn'))();
    const entries = await store.list();
    if (entries.length === 0) {
      runtime.stdout.write(`${text.noSignIns} (${store.location()})\n`);
      return;
    }
    const now = Date.now();
    // Stored fields may come from elsewhere (an older burrow, a hand edit): shown inert, one line each.
    const rows = [['PROXY', 'USER', 'EXPIRES'], ...entries.map((e) => [printableLine(e.proxy), printableLine(e.user ?? '-'), formatExpiry(e.expiresAt, now)])];
    runtime.stdout.write(`${table(rows)}\n(${store.location()})\n`);
  });
}
