/**
 * A separate process contending for the sign-in lock (test/integration/lock.test.ts):
 * `node lock-contender.js <lock path> <log file>` appends "enter PID" / "exit PID" around its
 * turn as owner, so the test can check that no two processes were ever inside at once.
 */
import { appendFileSync } from 'node:fs';
import { withLock } from '../../src/auth/lock.js';

const [path, log] = process.argv.slice(2) as [string, string];
await withLock(
  path,
  { timeoutMs: 20_000, staleAfterMs: 60_000, pollMs: 10 },
  async () => {
    appendFileSync(log, `enter ${process.pid}\n`);
    await new Promise((r) => setTimeout(r, 30));
    appendFileSync(log, `exit ${process.pid}\n`);
  },
  async () => undefined,
  () => new Error('timed out waiting for the lock'),
);
