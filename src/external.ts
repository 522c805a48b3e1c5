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

/** The parts of the CLI bundled apart from it (dist/bin/<part>.cjs): large, and needed by few runs. */
export type BundledPart = 'yaml';

export const LENT_PART = Symbol.for('burrow.part');

type PartLoader = (name: BundledPart) => unknown;

/**
 * Loads a dependency that scripts/bundle.mjs bundles on its own, beside the CLI (the YAML parser,
 * a third of the code, for the runs that have a config file): from there, with its own code
 * cache, through the loader (cli/loader.ts); without a loader, as a package.
 */
export async function importPart<T>(name: BundledPart): Promise<T> {
  const lent = (globalThis as { [LENT_PART]?: PartLoader })[LENT_PART];
  return (lent ? lent(name) : await import(name)) as T;
}

/** The part's file, when `error` says it is missing (a build left half done); otherwise undefined. */
export function missingPart(error: unknown, name: BundledPart): string | undefined {
  const { code, path } = (error ?? {}) as NodeJS.ErrnoException;
  return code === 'ENOENT' && typeof path === 'string' && path.endsWith(`${name}.cjs`) ? path : undefined;
}

/**
 * Loads a CommonJS dependency outside the bundle with `require`, for those needed on the way to a
 * tunnel (the keychain binding): in the bundle, a CommonJS script, the first `import()` starts
 * Node's ESM loader, about 40 ms more per process.
 */
export function requireExternal<T>(specifier: string): T {
  return createRequire(import.meta.url)(specifier) as T;
}
