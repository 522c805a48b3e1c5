/** The cross-process sign-in lock, with real files and real processes. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { LockUnavailableError, withLock } from '../../src/auth/lock.js';
import { ensureDir } from '../../src/store/ensure-dir.js';

const dir = mkdtempSync(join(tmpdir(), 'burrow-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const opts = { timeoutMs: 2000, staleAfterMs: 60_000, pollMs: 20 };
const timeoutError = () => new Error('lock timeout');

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

describe('withLock', () => {
  it('runs the owner and removes the lock', async () => {
    const path = join(dir, 'a.lock');
    const result = await withLock(path, opts, async () => {
      assert.ok(existsSync(path));
      return 'signed';
    }, async () => undefined, timeoutError);
    assert.deepEqual(result, { acquired: true, value: 'signed' });
    assert.ok(!existsSync(path));
  });

  it('removes the lock when the owner fails', async () => {
    const path = join(dir, 'b.lock');
    await assert.rejects(withLock(path, opts, async () => Promise.reject(new Error('browser closed')), async () => undefined, timeoutError), /browser closed/);
    assert.ok(!existsSync(path));
  });

  it('takes over a lock whose owner is dead, or is this very process, or is old garbage', async () => {
    for (const content of [
      JSON.stringify({ pid: await deadPid(), host: hostname(), since: Date.now() }),
      JSON.stringify({ pid: process.pid, host: hostname(), since: Date.now() }),
      '{"pid": 12',
    ]) {
      const path = join(dir, 'stale.lock');
      writeFileSync(path, content);
      // Garbage counts as stale only once it is old enough not to be a lock being written.
      if (content.startsWith('{"pid": 12')) utimesSync(path, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
      const result = await withLock(path, opts, async () => 'mine', async () => undefined, timeoutError);
      assert.deepEqual(result, { acquired: true, value: 'mine' }, content);
    }
  });

  it('takes over a lock older than staleAfterMs even if its pid lives', async () => {
    const path = join(dir, 'old.lock');
    writeFileSync(path, JSON.stringify({ pid: process.ppid, host: hostname(), since: Date.now() - 120_000 }));
    assert.equal((await withLock(path, opts, async () => 'mine', async () => undefined, timeoutError)).acquired, true);
  });

  it('waits for a live owner: takes its result, or times out with the given error', async () => {
    const path = join(dir, 'live.lock');
    const owner = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      writeFileSync(path, JSON.stringify({ pid: owner.pid, host: hostname(), since: Date.now() }));
      let waited = 0;
      let polls = 0;
      const result = await withLock(
        path,
        { ...opts, onWait: () => waited++ },
        async () => assert.fail('must not run while a live process owns the lock'),
        async () => (++polls >= 3 ? 'their token' : undefined),
        timeoutError,
      );
      assert.deepEqual(result, { acquired: false, value: 'their token' });
      assert.equal(waited, 1, 'announced once');
      await assert.rejects(
        withLock(path, { ...opts, timeoutMs: 200 }, async () => 'x', async () => undefined, timeoutError),
        /lock timeout/,
      );
      assert.ok(existsSync(path), 'a live owner\'s lock is left alone');
    } finally {
      owner.kill('SIGKILL');
      rmSync(path, { force: true });
    }
  });

  it('lets exactly one of many concurrent processes own it at a time', async () => {
    const path = join(dir, 'race.lock');
    const log = join(dir, 'race.log');
    const contender = fileURLToPath(new URL('../helpers/lock-contender.js', import.meta.url));
    const codes = await Promise.all(
      Array.from({ length: 8 }, () => {
        const child = spawn(process.execPath, [contender, path, log], { stdio: 'inherit' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        return new Promise<number | null>((resolve) => child.once('exit', (code) => (clearTimeout(timer), resolve(code))));
      }),
    );
    assert.deepEqual(codes, Array(8).fill(0));
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(lines.length, 16);
    for (let i = 0; i < lines.length; i += 2) {
      const pid = lines[i]!.split(' ')[1];
      assert.deepEqual([lines[i], lines[i + 1]], [`enter ${pid}`, `exit ${pid}`], 'no overlap');
    }
    assert.ok(!existsSync(path));
  });

  it('a lock that cannot be created is a LockUnavailableError, never a hang (a file in the way, /proc)', async () => {
    const file = join(dir, 'in-the-way');
    writeFileSync(file, 'x');
    for (const path of [join(file, 'locks', 'x.lock'), '/proc/burrow-no-such/locks/x.lock']) {
      await assert.rejects(
        withLock(path, opts, async () => assert.fail('must not run without the lock'), async () => undefined, timeoutError),
        (error: unknown) => error instanceof LockUnavailableError,
        path,
      );
    }
  });
});

describe('ensureDir', () => {
  it('creates missing parents, accepts existing ones, and ends with an error where nothing can be made', async () => {
    const deep = join(dir, 'a', 'b', 'c');
    await ensureDir(deep, 0o700);
    assert.ok(existsSync(deep));
    await ensureDir(deep, 0o700);
    // Node's own recursive mkdir never returns for this path (it spins on ENOENT).
    await assert.rejects(ensureDir('/proc/burrow-no-such/x/y', 0o700), { code: 'ENOENT' });
    writeFileSync(join(dir, 'file'), 'x');
    await assert.rejects(ensureDir(join(dir, 'file', 'sub'), 0o700), { code: 'ENOTDIR' });
  });
});
