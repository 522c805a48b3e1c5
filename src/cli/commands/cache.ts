/** `burrow cache location | clear`: where sign-ins live, and forgetting them all. */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { commandLogger } from '../proxy-access.js';
import { text } from '../../output/messages.js';
import { cacheDir } from '../../store/cache-dir.js';
import { addFlags } from '../flags.js';
import type { Runtime } from '../runtime.js';
import { type SignInValues, signInSettings, storeOpener } from '../sign-in.js';

export function registerCache(program: Command, runtime: Runtime): void {
  const cache = program.command('cache').description('where cached sign-ins live; forget them all');
  const location = cache.command('location').description('print the cache directory and where tokens are stored');
  addFlags(location, 'cache location');
  location.action(async (values: SignInValues) => {
    const store = await storeOpener(signInSettings(values), runtime, commandLogger({}, runtime, 'warn'))();
    runtime.stdout.write(`${cacheDir(runtime.env)}\n`);
    if (store.kind === 'keychain') runtime.stdout.write(`tokens: ${store.location()}\n`);
  });
  const clear = cache.command('clear').description('forget every cached sign-in and lock');
  addFlags(clear, 'cache clear');
  clear.action(async (values: SignInValues) => {
    const logger = commandLogger({}, runtime, 'info');
    const store = await storeOpener(signInSettings(values), runtime, logger)();
    const count = await store.clear();
    await rm(join(cacheDir(runtime.env), 'locks'), { recursive: true, force: true });
    logger.notice(text.loggedOutAll(count));
  });

}
