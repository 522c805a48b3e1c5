/**
 * The file credential store: one JSON file per proxy under `<cache dir>/credentials/`, readable by
 * the owner only (directory 0700, files 0600, as ssh and gcloud keep theirs). Used when there is
 * no usable OS keychain (servers, containers, CI) or when asked for with `--credential-store file`.
 *
 * Writes are atomic: a temporary file opened with O_EXCL and mode 0600, fsynced, then renamed over
 * the entry, so a reader (another burrow process) sees the old entry or the new one, never half of
 * one. The directory itself is not fsynced: after a crash the worst case is the previous token, and
 * the next run signs in again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { CredentialStoreError } from '../errors.js';
import { ensureDir } from './ensure-dir.js';
import { text } from '../output/messages.js';
import type { CredentialStore, CredentialSummary, StoredCredential } from './store.js';

/** `<32 hex>.json`: an entry. Anything else in the directory is not ours to read. */
const ENTRY = /^[0-9a-f]{32}\.json$/;
/** `<32 hex>.json.<pid>.<random>.tmp`: a write in progress, or left behind by a crash. */
const TEMP = /^[0-9a-f]{32}\.json\.\d+\.[0-9a-f]+\.tmp$/;

const isWindows = process.platform === 'win32';

export interface FileStoreOptions {
  /**
   * Called with the path of an entry that exists but cannot be understood (truncated by a full disk,
   * edited by hand, written by a future version). `get` then answers `undefined` and `list` skips it,
   * so a damaged file costs a sign-in, never a failure; the next `set` replaces it. selectStore passes
   * a function that prints `text.credentialFileCorrupt(path)`.
   */
  onCorrupt?: ((path: string) => void) | undefined;
}

/** The entry's file name: a hash, so origins with `:` and `/` make portable names of fixed length. */
export function entryName(proxy: string): string {
  return `${createHash('sha256').update(proxy).digest('hex').slice(0, 32)}.json`;
}

/** The stored form of a credential (files and keychain entries alike), versioned for later changes. */
export function encodeCredential(credential: StoredCredential): string {
  const { proxy, token, expiresAt, user, storedAt } = credential;
  return `${JSON.stringify({ version: 1, proxy, token, expiresAt, user, storedAt })}\n`;
}

/**
 * Parses what encodeCredential wrote; `undefined` for anything else, including an entry for another
 * proxy than `expectedProxy` (a file renamed by hand must not hand one proxy's token to another).
 */
export function decodeCredential(raw: string, expectedProxy?: string): StoredCredential | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.version !== 1 || typeof v.proxy !== 'string' || typeof v.token !== 'string' || v.token === '') return undefined;
  if (typeof v.storedAt !== 'number') return undefined;
  if (v.expiresAt !== undefined && typeof v.expiresAt !== 'number') return undefined;
  if (v.user !== undefined && typeof v.user !== 'string') return undefined;
  if (expectedProxy !== undefined && v.proxy !== expectedProxy) return undefined;
  const credential: StoredCredential = { proxy: v.proxy, token: v.token, storedAt: v.storedAt };
  if (v.expiresAt !== undefined) credential.expiresAt = v.expiresAt;
  if (v.user !== undefined) credential.user = v.user;
  return credential;
}

/** A credential without its token. */
export function summarize(credential: StoredCredential): CredentialSummary {
  const { token: _token, ...summary } = credential;
  return summary;
}

/** Credentials as 0600 JSON files in a 0700 directory; see the top of this file. */
export class FileStore implements CredentialStore {
  readonly kind = 'file' as const;
  /** The cache directory given by the caller: burrow's own, so tightening its mode is ours to do. */
  readonly #root: string;
  readonly #dir: string;
  readonly #onCorrupt: ((path: string) => void) | undefined;

  /** `dir` is burrow's cache directory (see `cacheDir` in select.ts); entries go in `dir/credentials`. */
  constructor(dir: string, options: FileStoreOptions = {}) {
    this.#root = dir;
    this.#dir = join(dir, 'credentials');
    this.#onCorrupt = options.onCorrupt;
  }

  /** The credentials directory. */
  location(): string {
    return this.#dir;
  }

  /** Where the entry for `proxy` lives (whether or not it exists). */
  path(proxy: string): string {
    return join(this.#dir, entryName(proxy));
  }

  async get(proxy: string): Promise<StoredCredential | undefined> {
    const path = this.path(proxy);
    const raw = await this.#read(path);
    if (raw === undefined) return undefined;
    const credential = decodeCredential(raw, proxy);
    if (credential === undefined) this.#onCorrupt?.(path);
    return credential;
  }

  async set(credential: StoredCredential): Promise<void> {
    await this.#ensureDirectory();
    const target = this.path(credential.proxy);
    const temp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    try {
      // 'wx' = O_CREAT|O_EXCL: never follows or reuses a file someone else put there.
      handle = await open(temp, 'wx', 0o600);
      await handle.writeFile(encodeCredential(credential), 'utf8');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, target);
    } catch (error) {
      await handle?.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw this.#failure('save', this.#dir, error);
    }
  }

  async delete(proxy: string): Promise<boolean> {
    return this.#remove(this.path(proxy));
  }

  async list(): Promise<CredentialSummary[]> {
    const summaries: CredentialSummary[] = [];
    for (const name of await this.#names()) {
      if (!ENTRY.test(name)) continue;
      const path = join(this.#dir, name);
      const raw = await this.#read(path);
      if (raw === undefined) continue; // removed since readdir
      const credential = decodeCredential(raw);
      if (credential === undefined || entryName(credential.proxy) !== name) {
        this.#onCorrupt?.(path);
        continue;
      }
      summaries.push(summarize(credential));
    }
    return summaries.sort((a, b) => (a.proxy < b.proxy ? -1 : a.proxy > b.proxy ? 1 : 0));
  }

  /** Removes every entry, damaged ones and leftover temporary files too (they hold tokens). */
  async clear(): Promise<number> {
    let removed = 0;
    for (const name of await this.#names()) {
      const entry = ENTRY.test(name);
      if (!entry && !TEMP.test(name)) continue;
      if ((await this.#remove(join(this.#dir, name))) && entry) removed++;
    }
    return removed;
  }

  async #read(path: string): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw this.#failure('read', path, error);
    }
  }

  async #remove(path: string): Promise<boolean> {
    try {
      await unlink(path);
      return true;
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return false;
      throw this.#failure('remove', path, error);
    }
  }

  async #names(): Promise<string[]> {
    try {
      return await readdir(this.#dir);
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return [];
      throw this.#failure('list', this.#dir, error);
    }
  }

  /** Creates the cache and credentials directories 0700, and tightens them if they are looser. */
  async #ensureDirectory(): Promise<void> {
    try {
      await ensureDir(this.#dir, 0o700);
      // mkdir's mode only applies to directories it creates. Windows has no such modes (its ACLs
      // already limit a profile's AppData to its user).
      if (isWindows) return;
      for (const dir of [this.#root, this.#dir]) {
        if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
      }
    } catch (error) {
      throw this.#failure('save', this.#dir, error);
    }
  }

  #failure(action: 'read' | 'save' | 'remove' | 'list', where: string, error: unknown): CredentialStoreError {
    return new CredentialStoreError(text.credentialStoreFailed(action, where, describe(error)), {
      hint: text.credentialStoreUnwritableHint,
      cause: error,
    });
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

/** A few words for an fs error (its message repeats the path, which the sentence already names). */
function describe(error: unknown): string {
  const code = errorCode(error);
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way of the directory';
    case 'EISDIR':
      return 'a directory is in the way of the file';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}
