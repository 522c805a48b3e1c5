/**
 * `burrow cache location | clear [--json]`: where sign-ins live, and forgetting them all. The
 * location is data (stdout, the directory alone on its line); `clear` reports on stderr, or as
 * JSON on stdout.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { commandLogger } from '../proxy-access.js';
import { text } from '../../output/messages.js';
import { cacheDir } from '../../store/cache-dir.js';
import { addFlags } from '../flags.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

interface CacheValues extends SignInValues {
  json?: boolean;
}

export function registerCache(program: Command, runtime: Runtime): void {
  const cache = program.command('cache').description('where cached sign-ins live; forget them all');
  const location = cache.command('location').description('print the cache directory and where tokens are stored');
  addFlags(location, 'cache location');
  location.action(async (values: CacheValues) => {
    const store = await storeOpener(signInSettings(values), runtime, commandLogger({ json: values.json }, runtime, 'warn'))();
    const directory = cacheDir(runtime.env);
    if (values.json) {
      runtime.stdout.write(`${JSON.stringify({ directory, store: store.kind, tokens: store.location() })}\n`);
      return;
    }
    runtime.stdout.write(`${directory}\n`);
    if (store.kind === 'keychain') runtime.stdout.write(`tokens: ${store.location()}\n`);
  });
  const clear = cache.command('clear').description('forget every cached sign-in and lock');
  addFlags(clear, 'cache clear');
  clear.action(async (values: CacheValues) => {
    const logger = commandLogger({ json: values.json }, runtime, 'info');
    const store = await storeOpener(signInSettings(values), runtime, logger)();
    const signedOut = values.json ? (await store.list()).map((e) => e.proxy) : [];
    const count = await store.clear();
    await rm(join(cacheDir(runtime.env), 'locks'), { recursive: true, force: true });
    if (values.json) runtime.stdout.write(`${JSON.stringify({ signed_out: signedOut })}\n`);
    else logger.notice(text.loggedOutAll(count));
  });
}
