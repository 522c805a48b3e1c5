/**
 * What the proxy said of a token a moment ago, shared by every burrow process: kubectl runs its
 * credential plugin once per invocation, and a script running kubectl in a loop (or ten at
 * once) should not cost a check with the proxy each time. One small file per proxy holds a
 * hash of the token the proxy last accepted and when; never the token itself. A memo that is
 * missing, damaged, of another token or too old is no memo: the token is checked again.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureDir } from '../store/ensure-dir.js';

/**
 * How long an accepted token is taken as still accepted without asking. Short: a session
 * revoked meanwhile is noticed by the next check after it (kubectl's own retry after a 401
 * reruns the plugin within the same second, and would get the same token back within it).
 */
export const CHECK_MEMO_MS = 10_000;

const hash = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 32);

/** The memo file of the proxy at `origin` under `dir`. */
export function memoPath(dir: string, origin: string): string {
  return join(dir, `${hash(origin)}.json`);
}

/** True when the proxy accepted `token` less than {@link CHECK_MEMO_MS} ago (per the memo at `path`). */
export async function recentlyAccepted(path: string, token: string, now: number): Promise<boolean> {
  try {
    const memo = JSON.parse(await readFile(path, 'utf8')) as { token?: unknown; at?: unknown };
    return memo.token === hash(token) && typeof memo.at === 'number' && memo.at <= now && now - memo.at < CHECK_MEMO_MS;
  } catch {
    return false;
  }
}

/** Notes that the proxy accepted `token` at `now`; a memo that cannot be written is skipped. */
export async function rememberAccepted(path: string, token: string, now: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await ensureDir(dirname(path), 0o700);
    await writeFile(temp, JSON.stringify({ token: hash(token), at: now }), { mode: 0o600 });
    // Atomic: a reader sees the old memo or the new one, never half of one.
    await rename(temp, path);
  } catch {
    await rm(temp, { force: true }).catch(() => {});
  }
}

/** Drops the memo at `path` (a sign-in forgotten), or every memo when `path` is the directory. */
export async function forgetAccepted(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true }).catch(() => {});
}
