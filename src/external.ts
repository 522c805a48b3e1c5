/**
 * Loads a dependency that stays outside the CLI bundle (@napi-rs/keyring, ws, undici, open) when it is
 * first needed. The bundle runs as a `vm.Script` (cli/loader.ts, for the code cache), where
 * Node 20 offers `import()` only as an experimental feature that prints a warning; so the loader,
 * an ordinary module, lends its own `import()` here. Without a loader (tests, the tsc output)
 * this is plain `import()`.
 */
import { createRequire } from 'node:module';

export const LENT_IMPORT = Symbol.for('burrow.import');

type Importer = (specifier: string) => Promise<unknown>;

export function importExternal<T>(specifier: string): Promise<T> {
  const lent = (globalThis as { [LENT_IMPORT]?: Importer })[LENT_IMPORT];
  return (lent ? lent(specifier) : import(specifier)) as Promise<T>;
}

/**
 * Loads a CommonJS dependency outside the bundle with `require`, for those needed on the way to a
 * tunnel (the keychain binding): in the bundle, a CommonJS script, the first `import()` starts
 * Node's ESM loader, about 40 ms more per process.
 */
export function requireExternal<T>(specifier: string): T {
  return createRequire(import.meta.url)(specifier) as T;
}
