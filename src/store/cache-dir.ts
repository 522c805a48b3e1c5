/**
 * Where burrow keeps what it caches: sign-ins (file store), lock files, the V8 code cache. Its own
 * module, free of the stores, because the start-up loader (cli/loader.ts) needs it before the CLI.
 */
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import envPaths from 'env-paths';

/**
 * burrow's cache directory (credentials, lock files, code cache). On Linux and the BSDs `$XDG_CACHE_HOME/burrow`
 * or `~/.cache/burrow`, computed here from `env` because env-paths reads the real process.env;
 * elsewhere env-paths' answer (`~/Library/Caches/burrow`, `%LOCALAPPDATA%\burrow\Cache`).
 */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'darwin' || process.platform === 'win32') return envPaths('burrow', { suffix: '' }).cache;
  // The XDG spec says a relative value is invalid and must be ignored.
  const xdg = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  return join(xdg ?? join(env.HOME || homedir(), '.cache'), 'burrow');
}
