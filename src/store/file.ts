/**
 * The file credential store: one JSON file per proxy under `<cache dir>/credentials/`, readable by
 * the owner only (directory 0700, files 0600, as ssh and gcloud keep theirs). Used when there is
 * no usable OS keychain (servers, containers, CI) or when asked for with `--credential-store file`.
 *
 * Writes are atomic: a temporary file opened with O_EXCL and mode 0600, fsynced, then renamed over
 * the entry, so a reader (another burrow process) sees the old entry or the new one, never half of
 * one. The directory itself is not fsynced: after a crash the worst case is the previous token, and
 * the next run signs in again.
 *
 * Modes are checked on every use, not only when burrow writes: a credential file that other users
 * can read (0644 after a `cp`, an rsync without -p, a restored backup) is made 0600 again, and the
 * cache and credentials directories 0700, each with one warning line naming the file and what to
 * do if the token was read. ssh refuses a private key in that state instead; burrow repairs,
 * because the two differ where it matters: a key is the user's own long-lived identity whose mode
 * ssh cannot know was meant, while this file is burrow's own cache of a short-lived token in a
 * directory burrow made; refusing would fail every ssh and git that runs burrow as a
 * ProxyCommand until someone typed the very chmod burrow can do itself; and a refusal does not
 * un-read a token any more than a repair does, so the line says how to discard it (logout, and the
 * proxy's sign-out page). What burrow cannot repair (a file or directory of another user) it
 * refuses: such a file is not used, such a directory is an error (exit 11).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, open, readdir, rename, stat, unlink } from 'node:fs/promises';
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
  /**
   * Receives the line about a file or directory that other users could use and that burrow made
   * private again (or a file it could not, and so does not use); once per path and store. Said at
   * once, even by a tunnel that only reads its token.
   */
  onInsecure?: ((line: string) => void) | undefined;
}

/** What reading an entry found: its text, and its mode if that let other users in. */
interface EntryRead {
  raw: string;
  /** The permission bits found, when group or others had any; the file is 0600 now unless `unrepaired`. */
  loose?: number | undefined;
  /** Why the loose mode could not be changed (a file of another user). */
  unrepaired?: unknown;
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
  readonly #onInsecure: ((line: string) => void) | undefined;
  readonly #warned = new Set<string>();
  /** The directory check of reads, once per store: a ProxyCommand reads one entry and goes. */
  #directoriesChecked: Promise<void> | undefined;

  /** `dir` is burrow's cache directory (see `cacheDir` in select.ts); entries go in `dir/credentials`. */
  constructor(dir: string, options: FileStoreOptions = {}) {
    this.#root = dir;
    this.#dir = join(dir, 'credentials');
    this.#onCorrupt = options.onCorrupt;
    this.#onInsecure = options.onInsecure;
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
    await this.#checkDirectories();
    const path = this.path(proxy);
    const entry = await this.#read(path);
    if (entry === undefined) return undefined;
    const credential = decodeCredential(entry.raw, proxy);
    if (credential === undefined) this.#onCorrupt?.(path);
    if (credential === undefined || !this.#usable(path, entry, credential.proxy)) return undefined;
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
    await this.#checkDirectories();
    return this.#remove(this.path(proxy));
  }

  async list(): Promise<CredentialSummary[]> {
    await this.#checkDirectories();
    const summaries: CredentialSummary[] = [];
    for (const name of await this.#names()) {
      if (!ENTRY.test(name)) continue;
      const path = join(this.#dir, name);
      const entry = await this.#read(path);
      if (entry === undefined) continue; // removed since readdir
      const credential = decodeCredential(entry.raw);
      if (credential === undefined || entryName(credential.proxy) !== name) {
        this.#onCorrupt?.(path);
        continue;
      }
      if (!this.#usable(path, entry, credential.proxy)) continue;
      summaries.push(summarize(credential));
    }
    return summaries.sort((a, b) => (a.proxy < b.proxy ? -1 : a.proxy > b.proxy ? 1 : 0));
  }

  /** Removes every entry, damaged ones and leftover temporary files too (they hold tokens). */
  async clear(): Promise<number> {
    await this.#checkDirectories();
    let removed = 0;
    for (const name of await this.#names()) {
      const entry = ENTRY.test(name);
      if (!entry && !TEMP.test(name)) continue;
      if ((await this.#remove(join(this.#dir, name))) && entry) removed++;
    }
    return removed;
  }

  /** Reads an entry through one descriptor: its mode is checked and repaired on the file that is read. */
  async #read(path: string): Promise<EntryRead | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw this.#failure('read', path, error);
    }
    try {
      const entry: EntryRead = { raw: '' };
      const mode = (await handle.stat()).mode & 0o777;
      if (!isWindows && (mode & 0o077) !== 0) {
        entry.loose = mode;
        await handle.chmod(0o600).catch((error: unknown) => (entry.unrepaired = error));
      }
      entry.raw = await handle.readFile('utf8');
      return entry;
    } catch (error) {
      throw this.#failure('read', path, error);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  /** Says what a loose mode meant; false when the entry must not be used (it is still open to others). */
  #usable(path: string, entry: EntryRead, proxy: string): boolean {
    if (entry.loose === undefined) return true;
    if (entry.unrepaired !== undefined) {
      this.#insecure(path, text.credentialFileNotPrivate(path, octal(entry.loose), describe(entry.unrepaired)));
      return false;
    }
    this.#insecure(path, text.credentialFileRepaired(path, proxy, octal(entry.loose)));
    return true;
  }

  #insecure(path: string, line: string): void {
    if (this.#warned.has(path)) return;
    this.#warned.add(path);
    this.#onInsecure?.(line);
  }

  #checkDirectories(): Promise<void> {
    this.#directoriesChecked ??= this.#tighten();
    return this.#directoriesChecked;
  }

  /**
   * Makes the cache and credentials directories 0700 where they exist and are looser, with one line
   * each. One that cannot be made private (another user's) is an error: files in a directory others
   * may write to can be swapped, and a listing of one others may read names every proxy.
   */
  async #tighten(): Promise<void> {
    // Windows has no such modes (its ACLs already limit a profile's AppData to its user).
    if (isWindows) return;
    for (const dir of [this.#root, this.#dir]) {
      let mode: number;
      try {
        const info = await stat(dir);
        if (!info.isDirectory()) continue; // reads and writes report what is in the way
        mode = info.mode & 0o777;
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw this.#failure('read', dir, error);
      }
      if ((mode & 0o077) === 0) continue;
      try {
        await chmod(dir, 0o700);
      } catch (error) {
        throw new CredentialStoreError(text.credentialDirNotPrivate(dir, octal(mode), describe(error)), {
          hint: text.credentialDirNotPrivateHint(dir),
          cause: error,
        });
      }
      this.#insecure(dir, text.credentialDirRepaired(dir, octal(mode)));
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
    } catch (error) {
      throw this.#failure('save', this.#dir, error);
    }
    // mkdir's mode only applies to directories it creates; ones that existed are checked here.
    await this.#tighten();
  }

  #failure(action: 'read' | 'save' | 'remove' | 'list', where: string, error: unknown): CredentialStoreError {
    return new CredentialStoreError(text.credentialStoreFailed(action, where, describe(error)), {
      hint: text.credentialStoreUnwritableHint,
      cause: error,
    });
  }
}

/** A mode as chmod takes it: `0644`. */
function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
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
