/**
 * Drives the keychain store from inside a keyring session (see keyring.ts) and prints one JSON line
 * with what happened, for store-keychain.test.ts to check:
 *
 *   roundtrip <tokenA> <tokenA2> <tokenB>   store, read, list, overwrite, delete, clear
 *   select <auto|keychain|file|default> [peek]  which store selectStore picks, its warnings or its
 *                                           error; with a proxy to peek at, what get() of it returns
 *   store <proxy> <token> | get <proxy>     one operation through loadKeychain
 *   freeze                                  stop the Secret Service mid-use: calls must time out,
 *                                           on an entry already opened and on one opened afterwards
 *
 * It always ends with process.exit: a keychain call that timed out still holds a libuv thread.
 * Without arguments (the test runner picks up every file under test/) it does nothing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { BurrowError } from '../../src/errors.js';
import { KEYCHAIN_SERVICE, loadKeychain } from '../../src/store/keychain.js';
import { parseStoreChoice, selectStore } from '../../src/store/select.js';
import type { CredentialStore, StoredCredential } from '../../src/store/store.js';

const run = promisify(execFile);

function errorInfo(error: unknown) {
  return error instanceof BurrowError
    ? { name: error.name, code: error.code, exitCode: error.exitCode, message: error.message, hint: error.hint }
    : { name: 'unexpected', message: String(error instanceof Error ? error.stack : error) };
}

async function keychain(timeoutMs?: number): Promise<CredentialStore> {
  const store = await loadKeychain({ env: process.env, timeoutMs });
  if ('unavailable' in store) throw new Error(`keychain unavailable: ${store.unavailable}`);
  return store;
}

/**
 * What the keyring holds for an account, asked through libsecret's own CLI rather than the binding.
 * keyring-rs files an entry under the attributes `service` and `username`.
 */
async function secretToolLookup(account: string): Promise<string> {
  const { stdout } = await run('secret-tool', ['lookup', 'service', KEYCHAIN_SERVICE, 'username', account], { timeout: 5000 });
  return stdout;
}

async function roundtrip(tokenA: string, tokenA2: string, tokenB: string) {
  const warnings: string[] = [];
  const store = await selectStore({ choice: 'keychain', env: process.env, warn: (l) => warnings.push(l) });
  const a: StoredCredential = { proxy: 'https://proxy.corp.test:443', token: tokenA, expiresAt: 2_000_000_000, user: 'ada@corp.test', storedAt: 1_700_000_000_000 };
  const b: StoredCredential = { proxy: 'https://other.corp.test:8443', token: tokenB, storedAt: 1_700_000_000_001 };
  await store.set(a);
  await store.set(b);
  const result = {
    kind: store.kind,
    location: store.location(),
    warnings,
    gotA: await store.get(a.proxy),
    gotB: await store.get(b.proxy),
    missing: (await store.get('https://nowhere.test:443')) ?? null,
    listed: await store.list(),
    inKeyring: await secretToolLookup(a.proxy),
    overwritten: await store.set({ ...a, token: tokenA2, storedAt: a.storedAt + 1 }).then(() => store.get(a.proxy)),
    deleted: await store.delete(b.proxy),
    deletedAgain: await store.delete(b.proxy),
    gotDeleted: (await store.get(b.proxy)) ?? null,
    cleared: await store.clear(),
    listedAfterClear: await store.list(),
    clearedAgain: await store.clear(),
  };
  return result;
}

async function select(choice: string, peek?: string) {
  const warnings: string[] = [];
  try {
    const store = await selectStore({
      choice: choice === 'default' ? undefined : parseStoreChoice(choice),
      env: process.env,
      warn: (l) => warnings.push(l),
      peek,
    });
    const got = peek === undefined ? undefined : ((await store.get(peek)) ?? null);
    // The fallback line is said when a sign-in is first stored, not when the store is chosen.
    const beforeSave = [...warnings];
    if (store.kind === 'file') await store.set({ proxy: 'https://probe.invalid:443', token: 'probe-token', storedAt: Date.now() });
    return { kind: store.kind, location: store.location(), beforeSave, warnings, ...(got === undefined ? {} : { got }) };
  } catch (error) {
    return { error: errorInfo(error), warnings };
  }
}

/**
 * SIGSTOPs the daemon that owns org.freedesktop.secrets, so calls hang as on a stuck desktop. `opened`
 * has read the entry before (its D-Bus connection is open, the call waits off the main thread);
 * `fresh` opens it only after the freeze (connecting is synchronous, bounded by D-Bus's own timeout).
 */
async function freeze() {
  const opened = await keychain(1000);
  const fresh = await keychain(1000);
  await opened.get('https://proxy.corp.test:443');
  const { stdout } = await run(
    'dbus-send',
    ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
      'org.freedesktop.DBus.GetConnectionUnixProcessID', 'string:org.freedesktop.secrets'],
    { timeout: 5000 },
  );
  const pid = Number(/uint32 (\d+)/.exec(stdout)?.[1]);
  if (!pid) throw new Error(`no pid for org.freedesktop.secrets in ${stdout}`);
  process.kill(pid, 'SIGSTOP');
  try {
    const attempt = async (store: CredentialStore) => {
      const started = Date.now();
      const outcome = await store.get('https://proxy.corp.test:443').then(
        () => ({ error: null }),
        (error: unknown) => ({ error: errorInfo(error) }),
      );
      return { ...outcome, ms: Date.now() - started };
    };
    return {
      first: await attempt(opened),
      second: await attempt(opened),
      freshFirst: await attempt(fresh),
      freshSecond: await attempt(fresh),
    };
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

async function main(): Promise<unknown> {
  const [mode, ...args] = process.argv.slice(2);
  switch (mode) {
    case 'roundtrip':
      return roundtrip(args[0]!, args[1]!, args[2]!);
    case 'select':
      return select(args[0]!, args[1]);
    case 'store':
      await (await keychain()).set({ proxy: args[0]!, token: args[1]!, storedAt: Date.now() });
      return { stored: true };
    case 'get':
      return { got: (await (await keychain()).get(args[0]!)) ?? null };
    case 'freeze':
      return freeze();
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

// `node --test dist/test/` runs every file under test/, this one too, without arguments: nothing to do.
if (process.argv.length <= 2) process.exit(0);

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
  },
  (error: unknown) => {
    process.stdout.write(`${JSON.stringify({ fatal: errorInfo(error) })}\n`, () => process.exit(3));
  },
);
