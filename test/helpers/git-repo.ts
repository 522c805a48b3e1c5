/**
 * A bare git repository to clone over ssh: a few commits of history and one large incompressible
 * binary file, made with the real `git` CLI and a fixed identity, so the same inputs always give
 * the same commits.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { payload } from './data.js';
import { run } from './sshd.js';

/** Fixed author and committer, and no user or system git config (a developer's must not leak in). */
export function gitEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    GIT_AUTHOR_NAME: 'Burrow Test',
    GIT_AUTHOR_EMAIL: 'test@corp.test',
    GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
    GIT_COMMITTER_NAME: 'Burrow Test',
    GIT_COMMITTER_EMAIL: 'test@corp.test',
    GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    ...extra,
  };
}

/** Runs git with {@link gitEnv}; throws with its stderr unless it exits 0. Returns stdout. */
export async function git(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  const result = await run('git', args, { cwd: options.cwd, env: gitEnv(options.env), timeoutMs: options.timeoutMs ?? 60_000 });
  if (result.code !== 0) throw new Error(`git ${args.join(' ')} exited with ${result.code}: ${result.stderr}`);
  return result.stdout.toString('utf8');
}

export interface BareRepo {
  /** Absolute path of the bare repository (`…/project.git`). */
  path: string;
  /** Commit id of HEAD (branch `main`). */
  head: string;
  /** Path of the large file inside the repository. */
  bigFile: string;
  bigFileBytes: number;
  /** Hex SHA-256 of the large file's content. */
  bigFileSha256: string;
}

/**
 * Creates `<dir>/project.git`: four commits on `main`, one of which adds `data/big.bin`, an
 * incompressible file of `bigFileBytes` (default 100 MiB, "a repository with a 100 MB pack").
 * The result holds a single pack, as a server's repository would after gc.
 */
export async function createBareRepo(dir: string, options: { bigFileBytes?: number } = {}): Promise<BareRepo> {
  const bigFileBytes = options.bigFileBytes ?? 100 * 1024 * 1024;
  const work = join(dir, 'work');
  const path = join(dir, 'project.git');
  mkdirSync(work, { recursive: true });
  await git(['init', '-q', '-b', 'main', work]);
  const commit = async (message: string) => {
    await git(['add', '-A'], { cwd: work, env: fast });
    await git(['commit', '-q', '-m', message], { cwd: work });
  };
  // Random bytes do not compress: storing them with compression 0, straight into a pack
  // (bigFileThreshold), takes well under a second instead of several.
  const fast = { GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_0: 'core.compression', GIT_CONFIG_VALUE_0: '0', GIT_CONFIG_KEY_1: 'core.bigFileThreshold', GIT_CONFIG_VALUE_1: '1m' };

  writeFileSync(join(work, 'README.md'), '# project\n\nA repository that burrow clones over ssh in tests.\n');
  await commit('Initial commit');
  mkdirSync(join(work, 'src'));
  writeFileSync(join(work, 'src', 'main.txt'), Array.from({ length: 200 }, (_, i) => `line ${i}\n`).join(''));
  await commit('Add sources');

  mkdirSync(join(work, 'data'));
  const bigFile = 'data/big.bin';
  const bigFileSha256 = writeBigFile(join(work, bigFile), bigFileBytes);
  await commit('Add a large binary file');
  writeFileSync(join(work, 'README.md'), '# project\n\nA repository that burrow clones over ssh in tests.\n\nIt has a large file.\n');
  await commit('Mention the large file');

  await git(['clone', '-q', '--bare', work, path]);
  await git(['repack', '-a', '-d', '-q'], { cwd: path, env: fast });
  const head = (await git(['rev-parse', 'HEAD'], { cwd: path })).trim();
  return { path, head, bigFile, bigFileBytes, bigFileSha256 };
}

/** Writes `bytes` deterministic pseudo-random bytes in 4 MiB chunks; returns their SHA-256. */
function writeBigFile(file: string, bytes: number): string {
  const chunk = 4 * 1024 * 1024;
  const hash = createHash('sha256');
  const fd = openSync(file, 'w');
  try {
    for (let offset = 0, seed = 1000; offset < bytes; offset += chunk, seed++) {
      const data = payload(Math.min(chunk, bytes - offset), seed);
      hash.update(data);
      for (let written = 0; written < data.length; ) written += writeSync(fd, data, written);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}
