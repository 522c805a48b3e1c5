/**
 * One browser prompt for many processes. `git fetch` over several repositories, Ansible or an
 * IDE start several `burrow --listen -` processes at once; only the one holding this lock signs
 * in, the others wait for the token it stores.
 *
 * The lock is a file holding the owner's pid, created atomically (link(2) fails if it exists).
 * A lock whose owner is dead (or older than any sign-in can take) is stale and taken over. Within one process, sign-ins are
 * already single-flight (credentials.ts), so a process never waits on its own lock.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { ensureDir } from '../store/ensure-dir.js';

export interface LockOwner {
  pid: number;
  host: string;
  since: number;
}

/**
 * The lock file itself cannot be used (a full disk, a read-only or impossible cache directory).
 * Callers may go on without the lock: it only saves duplicate browser prompts.
 */
export class LockUnavailableError extends Error {
  override readonly name = 'LockUnavailableError';
}

/** Runs one file operation of the lock, turning its failure into a LockUnavailableError. */
async function lockStep<T>(path: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw new LockUnavailableError(`cannot use the sign-in lock ${path}: ${(error as Error).message}`, { cause: error });
  }
}

export type LockResult<T> = { acquired: true; value: T } | { acquired: false; value: T };

export interface LockOptions {
  /** Give up waiting for another owner after this long. */
  timeoutMs: number;
  /** A lock older than this is stale whatever its owner (pid reuse, a hung process). */
  staleAfterMs: number;
  pollMs?: number;
  signal?: AbortSignal | undefined;
  now?: () => number;
  /** Called once when we start waiting for another process. */
  onWait?: (owner: LockOwner) => void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An unreadable lock younger than this may be one being written (no-hard-link fallback). */
const UNREADABLE_GRACE_MS = 2000;

async function readOwner(path: string): Promise<{ owner: LockOwner | undefined; raw: string; mtimeMs: number } | undefined> {
  try {
    const { mtimeMs } = await stat(path);
    const raw = await readFile(path, 'utf8');
    try {
      const parsed = JSON.parse(raw) as Partial<LockOwner>;
      if (typeof parsed.pid === 'number' && typeof parsed.since === 'number') {
        return { owner: { pid: parsed.pid, host: String(parsed.host ?? ''), since: parsed.since }, raw, mtimeMs };
      }
    } catch {
      // Garbage, or (without hard links) a lock being written: judged by its age below.
    }
    return { owner: undefined, raw, mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function isStale(lock: { owner: LockOwner | undefined; mtimeMs: number }, now: number, staleAfterMs: number): boolean {
  const { owner } = lock;
  if (!owner) return now - lock.mtimeMs > UNREADABLE_GRACE_MS;
  if (now - owner.since > staleAfterMs) return true;
  // Another machine sharing the cache dir (NFS home): we cannot probe its pids; trust the age.
  if (owner.host !== hostname()) return false;
  return owner.pid === process.pid || !alive(owner.pid);
}

/**
 * Tries once to create `path` holding `content`. The file appears atomically with its content
 * (written to a temporary name, then hard-linked, which fails if `path` exists), so no other
 * process ever reads a half-written lock and mistakes it for a stale one.
 */
async function tryCreate(path: string, content: string): Promise<boolean> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode: 0o600, flag: 'wx' });
  try {
    await link(temp, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw error;
    // A file system without hard links: fall back to O_EXCL (a reader may then see it empty
    // for an instant; such a lock is only judged stale once it is old, see isStale).
    try {
      await writeFile(path, content, { mode: 0o600, flag: 'wx' });
      return true;
    } catch (inner) {
      if ((inner as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw inner;
    }
  } finally {
    await unlink(temp).catch(() => {});
  }
}

/** How long a takeover guard may live before it is presumed left by a crashed process. */
const GUARD_STALE_MS = 5000;

/**
 * Removes a stale lock. Only the holder of a short-lived guard file may do so, and it deletes
 * the lock only if it still has exactly the content judged stale: two processes that both saw
 * the same stale lock cannot end up deleting a fresh one.
 */
async function takeOver(path: string, staleRaw: string, now: number): Promise<void> {
  const guard = `${path}.takeover`;
  if (!(await tryCreate(guard, String(process.pid)))) {
    const info = await stat(guard).catch(() => undefined);
    if (info && now - info.mtimeMs > GUARD_STALE_MS) await unlink(guard).catch(() => {});
    return;
  }
  try {
    const raw = await readFile(path, 'utf8').catch(() => undefined);
    if (raw === staleRaw) await unlink(path).catch(() => {});
  } finally {
    await unlink(guard).catch(() => {});
  }
}

/** Deletes our lock, unless someone took it over as stale meanwhile (a hung owner). */
async function release(path: string, content: string): Promise<void> {
  const raw = await readFile(path, 'utf8').catch(() => undefined);
  if (raw === content) await unlink(path).catch(() => {});
}

/**
 * Runs `whileOwner` holding the lock at `path`, or, if another live process holds it, polls
 * `whileWaiting` until it yields a value or the lock is released (then tries to take it).
 * Throws `timeoutError(owner)` when waiting exceeds `timeoutMs`, and a LockUnavailableError
 * when the lock file cannot be created or read at all.
 */
export async function withLock<T>(
  path: string,
  options: LockOptions,
  whileOwner: () => Promise<T>,
  whileWaiting: () => Promise<T | undefined>,
  timeoutError: (owner: LockOwner) => Error,
): Promise<LockResult<T>> {
  const now = options.now ?? Date.now;
  const poll = options.pollMs ?? 100;
  const started = now();
  await lockStep(path, () => ensureDir(dirname(path), 0o700));
  let announced = false;
  for (;;) {
    options.signal?.throwIfAborted();
    const mine = JSON.stringify({ pid: process.pid, host: hostname(), since: now() } satisfies LockOwner);
    if (await lockStep(path, () => tryCreate(path, mine))) {
      try {
        return { acquired: true, value: await whileOwner() };
      } finally {
        await release(path, mine);
      }
    }
    const current = await lockStep(path, () => readOwner(path));
    if (current === undefined) continue; // released between our attempt and the read
    if (isStale(current, now(), options.staleAfterMs)) {
      await lockStep(path, () => takeOver(path, current.raw, now()));
      continue;
    }
    const owner = current.owner!;
    if (!announced) {
      announced = true;
      options.onWait?.(owner);
    }
    const value = await whileWaiting();
    if (value !== undefined) return { acquired: false, value };
    if (now() - started > options.timeoutMs) throw timeoutError(owner);
    await new Promise((resolve) => setTimeout(resolve, poll));
  }
}
