/**
 * The keychain store against a real Secret Service: gnome-keyring in a private D-Bus session (see
 * helpers/keyring.ts), driven by helpers/keychain-probe.ts. Also the ways a keychain is unusable —
 * no D-Bus, no Secret Service, a locked keyring, a daemon that stops answering — each of which must
 * be an error when the keychain was asked for, and one warning plus the file store on auto.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { repoRoot } from '../helpers/fixtures.js';
import { type KeyringRun, type KeyringSession, keyringHome, probeResult, requireKeyringTools, runInKeyring } from '../helpers/keyring.js';

const PROBE = join(repoRoot, 'dist', 'test', 'helpers', 'keychain-probe.js');
const token = (name: string) => `eyJhbGciOiJFUzI1NiJ9.${name}-${randomBytes(12).toString('base64url')}.c2ln`;

interface ProbeError {
  name: string;
  code: string;
  exitCode: number;
  message: string;
}
interface SelectResult {
  got?: { token: string } | null;
  kind?: string;
  location?: string;
  /** What was said before the probe stored a sign-in in the chosen file store. */
  beforeSave?: string[];
  warnings: string[];
  error?: ProbeError;
}

async function probe<T>(session: KeyringSession, args: string[], home?: string): Promise<{ result: T; run: KeyringRun }> {
  const run = await runInKeyring(PROBE, args, { session, home });
  assert.equal(run.timedOut, false, `the probe timed out\n${run.stderr}`);
  // A crash of the native binding (on a locked entry, say) shows as a signal here.
  assert.equal(run.signal, null, `the probe died of ${run.signal}\n${run.stderr}`);
  const result = probeResult<T & { fatal?: unknown }>(run);
  assert.equal(result.fatal, undefined, `the probe failed: ${JSON.stringify(result.fatal)}\n${run.stderr}`);
  assert.equal(run.code, 0);
  return { result, run };
}

/** What gnome-keyring keeps on disk under `home`: it rewrites its file on every change. */
function keyringFiles(home: string): string {
  const dir = join(home, 'data', 'keyrings');
  const hash = createHash('sha256');
  for (const name of readdirSync(dir).sort()) hash.update(name).update(readFileSync(join(dir, name)));
  return hash.digest('hex');
}

/**
 * `choice` must fail with BURROW_CREDENTIAL_STORE, saying `reason`; auto must fall back to files with one warning
 * line, said when a sign-in is first stored there. With `peek`, the same while reading that proxy's entry first (as a tunnel does).
 */
async function assertUnusable(session: KeyringSession, reason: string, home?: string, peek?: string): Promise<void> {
  const extra = peek === undefined ? [] : [peek];
  const asked = (await probe<SelectResult>(session, ['select', 'keychain', ...extra], home)).result;
  assert.equal(asked.error?.code, 'BURROW_CREDENTIAL_STORE', JSON.stringify(asked));
  assert.equal(asked.error?.message, text.keychainRequired(reason));
  assert.equal(asked.error?.exitCode, ExitCode.credentialStore);
  assert.deepEqual(asked.warnings, []);

  const auto = (await probe<SelectResult>(session, ['select', 'default', ...extra], home)).result;
  assert.equal(auto.error, undefined, JSON.stringify(auto));
  assert.equal(auto.kind, 'file');
  assert.deepEqual(auto.beforeSave, [], 'nothing said until a sign-in is stored');
  assert.equal(auto.warnings.length, 1, JSON.stringify(auto.warnings));
  assert.ok(!auto.warnings[0]!.includes('\n'));
  assert.ok(auto.warnings[0]!.includes(auto.location!), 'the warning names where the files go');
}

describe('keychain store (gnome-keyring in a private D-Bus session)', () => {
  before(() => {
    // Missing tools fail here, with the package names; never a skip (CI must run these).
    requireKeyringTools();
  });

  it('stores in the keyring, reads back, lists without tokens, overwrites, deletes, clears', async () => {
    const [a, a2, b] = [token('a'), token('a2'), token('b')];
    const { result: r } = await probe<{
      kind: string;
      location: string;
      warnings: string[];
      gotA: unknown;
      gotB: unknown;
      missing: unknown;
      listed: Array<Record<string, unknown>>;
      inKeyring: string;
      overwritten: { token: string };
      deleted: boolean;
      deletedAgain: boolean;
      gotDeleted: unknown;
      cleared: number;
      listedAfterClear: unknown[];
      clearedAgain: number;
    }>('unlocked', ['roundtrip', a, a2, b]);

    assert.equal(r.kind, 'keychain');
    assert.equal(r.location, 'the OS keychain (service "burrow")');
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.gotA, { proxy: 'https://proxy.corp.test:443', token: a, expiresAt: 2_000_000_000, user: 'ada@corp.test', storedAt: 1_700_000_000_000 });
    assert.deepEqual(r.gotB, { proxy: 'https://other.corp.test:8443', token: b, storedAt: 1_700_000_000_001 });
    assert.equal(r.missing, null);
    assert.deepEqual(r.listed, [
      { proxy: 'https://other.corp.test:8443', storedAt: 1_700_000_000_001 },
      { proxy: 'https://proxy.corp.test:443', expiresAt: 2_000_000_000, user: 'ada@corp.test', storedAt: 1_700_000_000_000 },
    ]);
    for (const t of [a, b]) assert.ok(!JSON.stringify(r.listed).includes(t), 'a listing carries a token');

    // The token really is in the Secret Service (read back with libsecret's own secret-tool).
    assert.equal((JSON.parse(r.inKeyring) as { token: string }).token, a);

    assert.equal(r.overwritten.token, a2);
    assert.equal(r.deleted, true);
    assert.equal(r.deletedAgain, false);
    assert.equal(r.gotDeleted, null);
    assert.equal(r.cleared, 1);
    assert.deepEqual(r.listedAfterClear, []);
    assert.equal(r.clearedAgain, 0);
  });

  it('auto picks the keychain when it works, without a warning', async () => {
    const home = keyringHome();
    try {
      const { result } = await probe<SelectResult>('unlocked', ['select', 'default'], home);
      assert.equal(result.kind, 'keychain');
      assert.deepEqual(result.warnings, []);
      // Nothing went to files.
      assert.equal(existsSync(join(home, 'cache', 'burrow')), false);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('a tunnel whose token is in the keychain reads it without writing to the keychain (no probe entry)', async () => {
    const home = keyringHome();
    const proxy = 'https://proxy.corp.test:443';
    const stored = token('peek');
    try {
      await probe('unlocked', ['store', proxy, stored], home);
      const before = keyringFiles(home);
      const { result } = await probe<SelectResult>('unlocked', ['select', 'default', proxy], home);
      assert.equal(result.kind, 'keychain');
      assert.deepEqual(result.warnings, []);
      assert.equal(result.got?.token, stored);
      assert.equal(keyringFiles(home), before, 'the keyring was written to');
      // Without the entry to read, the check writes and removes its probe entry: the file changes.
      const other = (await probe<SelectResult>('unlocked', ['select', 'default', 'https://other.corp.test:443'], home)).result;
      assert.equal(other.kind, 'keychain');
      assert.equal(other.got, null);
      assert.notEqual(keyringFiles(home), before, 'the probe left no trace on disk, so the first check proves nothing');
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('the bundled binary reads a sign-in from the keychain (the binding loads outside the bundle)', async () => {
    const home = keyringHome();
    const proxy = 'https://proxy.corp.test:443';
    try {
      await probe('unlocked', ['store', proxy, token('bin')], home);
      const run = await runInKeyring(join(repoRoot, 'bin', 'burrow.js'), ['status', proxy, '--credential-store', 'keychain'], { home });
      assert.equal(run.signal, null, run.stderr);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stderr.includes(text.signedIn(proxy, undefined, text.noExpiryKnown)), run.stderr);
      assert.ok(run.stderr.includes(text.signInsKeptIn('the OS keychain (service "burrow")')), run.stderr);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  it('without a D-Bus session: an error when asked for, files plus one warning on auto', async () => {
    await assertUnusable('no-dbus', 'no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set');
  });

  it('without a Secret Service on the bus: the same (not the kernel keyring instead)', async () => {
    await assertUnusable('no-secret-service', 'no Secret Service on D-Bus');
  });

  describe('a locked keyring', () => {
    const home = keyringHome();
    const proxy = 'https://proxy.corp.test:443';
    const stored = token('locked');
    after(() => rmSync(home, { recursive: true, force: true }));

    it('is unusable (and does not crash the process), with the entry left intact', async () => {
      // Create the login keyring with an entry in it, then start the next session without its password.
      await probe('unlocked', ['store', proxy, stored], home);
      await assertUnusable('locked', 'the keychain is locked', home);
      // Reading the entry first (as a tunnel does) finds nothing in a locked keyring: the same.
      await assertUnusable('locked', 'the keychain is locked', home, proxy);
      const { result } = await probe<{ got: { token: string } | null }>('unlocked', ['get', proxy], home);
      assert.equal(result.got?.token, stored);
    });
  });

  it('a fresh keyring that was never unlocked (no default keyring) is unusable', async () => {
    await assertUnusable('locked', 'the keychain has no default keyring');
  });

  it('a Secret Service that stops answering: calls time out, then fail at once', async () => {
    type Attempt = { error: ProbeError | null; ms: number };
    const { result, run } = await probe<{ first: Attempt; second: Attempt; freshFirst: Attempt; freshSecond: Attempt }>('unlocked', ['freeze']);
    const failed = (attempt: Attempt, reason: string) => {
      assert.equal(attempt.error?.code, 'BURROW_CREDENTIAL_STORE');
      assert.ok(attempt.error.message.endsWith(`: ${reason}`), attempt.error.message);
    };
    // An entry already open: the store's own bound (1 s here) ends the wait.
    failed(result.first, 'the keychain did not answer within 1 s');
    assert.ok(result.first.ms >= 900 && result.first.ms < 1900, `first call took ${result.first.ms} ms`);
    failed(result.second, 'the keychain did not answer within 1 s');
    assert.ok(result.second.ms < 500, `second call took ${result.second.ms} ms`);
    // Opening an entry waits in D-Bus, which gives up by itself (after about 2 s).
    failed(result.freshFirst, 'the keychain did not answer');
    assert.ok(result.freshFirst.ms >= 900 && result.freshFirst.ms < 5000, `first call on a fresh entry took ${result.freshFirst.ms} ms`);
    failed(result.freshSecond, 'the keychain did not answer');
    assert.ok(result.freshSecond.ms < 500, `second call on a fresh entry took ${result.freshSecond.ms} ms`);
    assert.ok(run.ms < 15_000);
  });
});
