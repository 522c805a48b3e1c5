/**
 * Starts the bundled CLI (dist/bin/burrow.cjs) with a V8 code cache, because every ssh
 * ProxyCommand pays burrow's start-up again and Node 20 caches no compiled code of its own
 * (`module.enableCompileCache` is Node 22). The bundle is compiled through `vm.Script` with the
 * bytecode a previous run left in `<cache dir>/code-cache/`; without it, or when V8 turns it
 * down (another Node, other flags), it compiles from source as usual and writes a new cache when
 * the process exits. Measured in docs/performance.md.
 *
 * The cache is bytecode that runs as burrow, so it lives only in the user's own cache directory
 * (0700), never in a shared temporary one; and it is keyed by the bundle's size and
 * modification time as well as the Node version, because V8 itself checks only the source's
 * length. BURROW_NO_CODE_CACHE=1 turns it off.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

/** The file for this bundle: one per installed copy of burrow (a hash of its path). */
export function codeCachePath(bundle: string, env: NodeJS.ProcessEnv): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bundle.length; i++) hash = Math.imul(hash ^ bundle.charCodeAt(i), 0x01000193) >>> 0;
  return join(cacheDir(env), 'code-cache', `burrow-${hash.toString(16).padStart(8, '0')}.bin`);
}

/**
 * What a cache must match: this bundle (size, modification time) under this Node. A cache file
 * is this, its kind and a newline, then the V8 data.
 */
function identity(bundle: string): string {
  const { size, mtimeMs } = statSync(bundle);
  return `burrow-code-cache 1 ${size} ${mtimeMs} ${process.version} ${process.arch}`;
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
  const path = enabled ? codeCachePath(bundle, env) : undefined;
  const id = identity(bundle);
  const stored = path ? readStored(path, id) : undefined;
  // The bundle's on-demand dependencies are imported from here (external.ts): inside a vm.Script,
  // Node 20's import() is experimental and warns.
  (globalThis as { [LENT_IMPORT]?: (specifier: string) => Promise<unknown> })[LENT_IMPORT] = (specifier) => import(specifier);
  const script = new vm.Script(Module.wrap(readFileSync(bundle, 'utf8')), { filename: bundle, cachedData: stored?.data });
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
