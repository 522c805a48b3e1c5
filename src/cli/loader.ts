/**
 * Starts the bundled CLI (dist/bin/burrow.cjs) with a V8 code cache, because every ssh
 * ProxyCommand pays burrow's start-up again and Node 20 caches no compiled code of its own
 * (`module.enableCompileCache` is Node 22). The bundle is compiled through `vm.Script` with the
 * bytecode a previous run left in `<cache dir>/code-cache/`; without it, or when V8 turns it
 * down (another Node, other flags), it compiles from source as usual and writes a new cache when
 * the process exits. Measured in docs/performance.md.
 *
 * The parts of the CLI that few runs need and that are large (the YAML parser, a third of the
 * whole) are bundles of their own beside it (dist/bin/<part>.cjs, external.ts `importPart`),
 * loaded the same way, each with its own cache file, when first needed: a start-up reads and
 * compiles only what it runs.
 *
 * The cache is bytecode that runs as burrow, so it lives only in the user's own cache directory
 * (0700), never in a shared temporary one; and it is keyed by the SHA-256 of the bundle's
 * content as well as the Node version, because V8 itself checks only the source's length (a
 * bundle's size and modification time prove nothing: a tarball extracts with fixed times). The
 * hashes are taken once, at build time (scripts/bundle.mjs puts them in this file). One cache file
 * per bundle and build; writing one removes that bundle's caches of other builds.
 * BURROW_NO_CODE_CACHE=1 turns it off.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import vm from 'node:vm';
import { type BundledPart, LENT_IMPORT, LENT_PART } from '../external.js';
import { cacheDir } from '../store/cache-dir.js';
import { TUNNEL_COMMANDS } from './command-table.js';

/**
 * What the cache was made by. A tunnel compiles the functions the next tunnel needs, so its cache
 * replaces one left by another command (`--version`, `ssh-config`), not the other way round.
 */
type Kind = 'tunnel' | 'other';

interface Stored {
  data: Buffer;
  kind: Kind;
}

/** A bundle in dist/bin/: the CLI itself, or one of its parts. */
export type BundleName = 'burrow' | BundledPart;

/** The SHA-256 of each bundle in dist/bin/ by name, put in by the bundler; undefined when unbundled. */
declare const __BURROW_BUNDLE_SHA256__: Record<BundleName, string> | undefined;

/** A bundle's content hash (hex): the build's, or (unbundled, as in tests) computed from `source`. */
export function bundleHash(source: Buffer | string, name: BundleName = 'burrow'): string {
  if (typeof __BURROW_BUNDLE_SHA256__ === 'object') return __BURROW_BUNDLE_SHA256__[name];
  return createHash('sha256').update(source).digest('hex');
}

const SUFFIX = '.bin';

/** The cache file of bundle `name` whose content hashes to `hash`: copies of one build share it. */
export function codeCachePath(hash: string, env: NodeJS.ProcessEnv, name: BundleName = 'burrow'): string {
  return join(cacheDir(env), 'code-cache', `${name}-${hash.slice(0, 16)}${SUFFIX}`);
}

/**
 * What a cache must match: this bundle's content under this Node. A cache file is this, its kind
 * and a newline, then the V8 data.
 */
function identity(hash: string): string {
  return `burrow-code-cache 2 ${hash} ${process.version} ${process.arch}`;
}

/** Removes the caches of other builds of the same bundle beside `path` (an upgrade leaves the old one behind). */
function pruneOthers(path: string, name: BundleName): void {
  const dir = dirname(path);
  const own = path.slice(dir.length + 1);
  // `burrow-<hex>.bin` prunes only other `burrow-<hex>.bin`, `yaml-<hex>.bin` only other `yaml-…`.
  const sameBundle = new RegExp(`^${name}-[0-9a-f]+\\${SUFFIX}$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const other of names) {
    if (other === own || !sameBundle.test(other)) continue;
    try {
      rmSync(join(dir, other), { force: true });
    } catch {
      // Another process's, or not ours to remove: left.
    }
  }
}

function readStored(path: string, id: string): Stored | undefined {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch {
    return undefined;
  }
  const end = raw.indexOf(0x0a);
  if (end < 0 || end > 512) return undefined;
  const line = raw.subarray(0, end).toString('latin1');
  const kind = line.startsWith(`${id} `) ? line.slice(id.length + 1) : undefined;
  return kind === 'tunnel' || kind === 'other' ? { data: raw.subarray(end + 1), kind } : undefined;
}

/** Writes the cache atomically (parallel ssh processes may all do so); any failure is ignored. */
function writeStored(path: string, name: BundleName, id: string, kind: Kind, data: Buffer): void {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    const dir = dirname(path);
    // Without `recursive`: Node's recursive mkdir can spin forever (store/ensure-dir.ts).
    for (const d of [dirname(dirname(dir)), dirname(dir), dir]) {
      try {
        mkdirSync(d, { mode: 0o700 });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    writeFileSync(temporary, Buffer.concat([Buffer.from(`${id} ${kind}\n`, 'latin1'), data]), { mode: 0o600 });
    renameSync(temporary, path);
    pruneOthers(path, name);
  } catch {
    // A read-only or full disk only costs the next start-up its cache.
    try {
      rmSync(temporary, { force: true });
    } catch {
      // Nothing was written there, or nothing can be removed.
    }
  }
}

/** Whether the code cache is on. */
function cacheEnabled(env: NodeJS.ProcessEnv): boolean {
  return !['1', 'true', 'yes'].includes((env.BURROW_NO_CODE_CACHE ?? '').toLowerCase());
}

/**
 * Compiles and runs the CommonJS bundle `file` with its code cache and returns its exports. The
 * cache is written at exit when there was none, V8 turned it down, or this run's is worth more (a
 * tunnel's over another command's; a part's is always of kind `other`).
 */
function runCached(file: string, name: BundleName, env: NodeJS.ProcessEnv, kind: Kind): unknown {
  const source = readFileSync(file, 'utf8');
  const hash = bundleHash(source, name);
  const path = cacheEnabled(env) ? codeCachePath(hash, env, name) : undefined;
  const id = identity(hash);
  const stored = path ? readStored(path, id) : undefined;
  const script = new vm.Script(Module.wrap(source), { filename: file, cachedData: stored?.data });
  const module = { exports: {} };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  if (path && (!stored || script.cachedDataRejected === true || (stored.kind === 'other' && kind === 'tunnel'))) {
    // At exit the cache holds every function this run compiled, not just the top level.
    process.once('exit', () => writeStored(path, name, id, kind, script.createCachedData()));
  }
  return module.exports;
}

/** Loads `bundle` (a CommonJS file exporting `run`) with the code cache, and runs the CLI. */
export function start(bundle: string, argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): void {
  const lent = globalThis as { [LENT_IMPORT]?: (specifier: string) => Promise<unknown>; [LENT_PART]?: (name: BundledPart) => unknown };
  // The bundle's on-demand dependencies are imported from here (external.ts): inside a vm.Script,
  // Node 20's import() is experimental and warns.
  lent[LENT_IMPORT] = (specifier) => import(specifier);
  // Its parts, from beside it; each is loaded once (a second call gets the same exports).
  const parts = new Map<BundledPart, unknown>();
  lent[LENT_PART] = (name) => {
    if (!parts.has(name)) parts.set(name, runCached(join(dirname(bundle), `${name}.cjs`), name, env, 'other'));
    return parts.get(name);
  };
  const kind: Kind = TUNNEL_COMMANDS.has(argv[2] ?? '') ? 'tunnel' : 'other';
  const cli = runCached(bundle, 'burrow', env, kind) as { run(): Promise<void> };
  void cli.run();
}
