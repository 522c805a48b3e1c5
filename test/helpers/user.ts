/**
 * A user of a test's own: a cache directory (so a sign-in is stored there and nowhere else) and
 * the scripted browser logging its launches to a file in it; and a cached sign-in put in place
 * in that user's file store, as burrow would have stored it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tokenInfo } from '../../src/auth/jwt.js';
import { encodeCredential, entryName } from '../../src/store/file.js';
import { browserEnv } from './browsers/index.js';
import { tempDir } from './burrow.js';

export interface TestUser {
  /** XDG_CACHE_HOME: burrow's store and cache live under it. */
  cache: string;
  /** The scripted browser's launch log (browserLaunches reads it). */
  log: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh user; `extraEnv` is added to its environment. */
export function testUser(prefix: string, extraEnv: NodeJS.ProcessEnv = {}): TestUser {
  const cache = tempDir(prefix);
  const log = join(cache, 'browser.log');
  return { cache, log, env: { XDG_CACHE_HOME: cache, ...extraEnv, ...browserEnv({ log }) } };
}

/** Puts `token` in the file store under `cache` as the cached sign-in for `origin`. */
export function cacheToken(cache: string, origin: string, token: string): void {
  const dir = join(cache, 'burrow', 'credentials');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const info = tokenInfo(token);
  writeFileSync(join(dir, entryName(origin)), encodeCredential({ proxy: origin, token, user: info.user, expiresAt: info.expiresAt, storedAt: Date.now() }), {
    mode: 0o600,
  });
}
