/**
 * Starts the bundled CLI (dist/bin/burrow.cjs) with a V8 code cache, because every ssh
 * ProxyCommand pays burrow's start-up again and Node 20 caches no compiled code of its own
 * (`module.enableCompileCache` is Node 22). The bundle is compiled through `vm.Script` with the
 * bytecode a previous run left in `<cache dir>/code-cache/`; without it, or when V8 turns it
 * down (another Node, other flags), it compiles from source as usual and writes a new cache when
 * the process exits. Measured in docs/performance.md.
 *
 * The cache is bytecode that runs as burrow, so it lives only in the user's own cache directory
 * (0700), never in a shared temporary one; and it is keyed by the SHA-256 of the bundle's
 * content as well as the Node version, because V8 itself checks only the source's length (a
 * bundle's size and modification time prove nothing: a tarball extracts with fixed times). The
 * hash is taken once, at build time (scripts/bundle.mjs puts it in this file). One cache file per
 * build; writing one removes those of other builds. BURROW_NO_CODE_CACHE=1 turns it off.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import vm from 'node:vm';
import { LENT_IMPORT } from '../external.js';
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

/** The SHA-256 of dist/bin/burrow.cjs, put in by the bundler; undefined when unbundled. */
declare const __BURROW_BUNDLE_SHA256__: string | undefined;

/** The bundle's content hash (hex): the build's, or (unbundled, as in tests) computed from `source`. */
export function bundleHash(source: Buffer | string): string {
  if (typeof __BURROW_BUNDLE_SHA256__ === 'string') return __BURROW_BUNDLE_SHA256__;
  return createHash('sha256').update(source).digest('hex');
}

const PREFIX = 'burrow-';
const SUFFIX = '.bin';

/** The file for the build whose bundle hashes to `hash`: copies of one build share it. */
export function codeCachePath(hash: string, env: NodeJS.ProcessEnv): string {
  return join(cacheDir(env), 'code-cache', `${PREFIX}${hash.slice(0, 16)}${SUFFIX}`);
}

/**
 * What a cache must match: this bundle's content under this Node. A cache file is this, its kind
 * and a newline, then the V8 data.
 */
function identity(hash: string): string {
  return `burrow-code-cache 2 ${hash} ${process.version} ${process.arch}`;
}

/** Removes the caches of other builds beside `path` (an upgrade leaves the old one behind). */
function pruneOthers(path: string): void {
  const dir = dirname(path);
  const own = path.slice(dir.length + 1);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (name === own || !name.startsWith(PREFIX) || !name.endsWith(SUFFIX)) continue;
    try {
      rmSync(join(dir, name), { force: true });
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
function writeStored(path: string, id: string, kind: Kind, data: Buffer): void {
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
    pruneOthers(path);
  } catch {
    // A read-only or full disk only costs the next start-up its cache.
    try {
      rmSync(temporary, { force: true });
    } catch {
      // Nothing was written there, or nothing can be removed.
    }
  }
}

/** Loads `bundle` (a CommonJS file exporting `run`) with the code cache, and runs the CLI. */
export function start(bundle: string, argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): void {
  const enabled = !['1', 'true', 'yes'].includes((env.BURROW_NO_CODE_CACHE ?? '').toLowerCase());
  const source = readFileSync(bundle, 'utf8');
  const hash = bundleHash(source);
  const path = enabled ? codeCachePath(hash, env) : undefined;
  const id = identity(hash);
  const stored = path ? readStored(path, id) : undefined;
  // The bundle's on-demand dependencies are imported from here (external.ts): inside a vm.Script,
  // Node 20's import() is experimental and warns.
  (globalThis as { [LENT_IMPORT]?: (specifier: string) => Promise<unknown> })[LENT_IMPORT] = (specifier) => import(specifier);
  const script = new vm.Script(Module.wrap(source), { filename: bundle, cachedData: stored?.data });
  const module = { exports: {} as { run(): Promise<void> } };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper.call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle));

  const kind: Kind = TUNNEL_COMMANDS.has(argv[2] ?? '') ? 'tunnel' : 'other';
  if (path && (!stored || script.cachedDataRejected === true || (stored.kind === 'other' && kind === 'tunnel'))) {
    // At exit the cache holds every function this run compiled, not just the top level.
    process.once('exit', () => writeStored(path, id, kind, script.createCachedData()));
  }
  void module.exports.run();
}
