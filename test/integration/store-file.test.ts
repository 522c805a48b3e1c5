import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type CredentialStoreError, ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { entryName, FileStore } from '../../src/store/file.js';
import { cacheDir } from '../../src/store/cache-dir.js';
import { parseStoreChoice, selectStore } from '../../src/store/select.js';
import type { StoredCredential } from '../../src/store/store.js';
import { repoRoot } from '../helpers/fixtures.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'burrow-store-file-'));
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

const PROXY = 'https://proxy.corp.example.com:443';
const OTHER = 'https://other.corp.example.com:8443';
const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJlbWFpbCI6ImFkYUBjb3JwLnRlc3QifQ.c2lnbmF0dXJl';

function credential(proxy = PROXY, token = TOKEN): StoredCredential {
  return { proxy, token, expiresAt: 2_000_000_000, user: 'ada@corp.test', storedAt: 1_700_000_000_000 };
}

const mode = async (path: string) => (await stat(path)).mode & 0o777;
const run = promisify(execFile);

/** Why the immutable-file case cannot run here (it needs root and a file system with chattr +i), or false. */
function immutableSkip(): string | false {
  // In CI (root, a real file system) it must run: a missing chattr fails the test there, never skips it.
  if (process.env.CI === 'true') return false;
  if (process.getuid?.() !== 0) return 'needs root (chattr +i)';
  const probe = join(tmpdir(), `burrow-chattr-${process.pid}`);
  try {
    writeFileSync(probe, '');
    execFileSync('chattr', ['+i', probe], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', probe], { stdio: 'ignore' });
    return false;
  } catch {
    return 'chattr +i is not available on this file system';
  } finally {
    rmSync(probe, { force: true });
  }
}

describe('FileStore', () => {
  it('stores, reads, lists, deletes and clears', async () => {
    const store = new FileStore(await tempDir());
    assert.equal(store.kind, 'file');
    assert.equal(await store.get(PROXY), undefined);
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.delete(PROXY), false);
    assert.equal(await store.clear(), 0);

    await store.set(credential());
    await store.set({ proxy: OTHER, token: 'other-token', storedAt: 1 });
    assert.deepEqual(await store.get(PROXY), credential());
    assert.deepEqual(await store.get(OTHER), { proxy: OTHER, token: 'other-token', storedAt: 1 });

    await store.set(credential(PROXY, 'replaced-token'));
    assert.equal((await store.get(PROXY))?.token, 'replaced-token');

    assert.deepEqual(await store.list(), [
      { proxy: OTHER, storedAt: 1 },
      { proxy: PROXY, expiresAt: 2_000_000_000, user: 'ada@corp.test', storedAt: 1_700_000_000_000 },
    ]);
    assert.equal(await store.delete(OTHER), true);
    assert.equal(await store.delete(OTHER), false);
    assert.equal(await store.get(OTHER), undefined);
    assert.equal(await store.clear(), 1);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(await readdir(store.location()), []);
  });

  it('writes the documented layout: credentials/<sha256 prefix>.json, version 1', async () => {
    const dir = await tempDir();
    const store = new FileStore(dir);
    await store.set(credential());
    assert.equal(store.location(), join(dir, 'credentials'));
    assert.match(entryName(PROXY), /^[0-9a-f]{32}\.json$/);
    assert.equal(store.path(PROXY), join(dir, 'credentials', entryName(PROXY)));
    assert.deepEqual(JSON.parse(await readFile(store.path(PROXY), 'utf8')), { version: 1, ...credential() });
  });

  it('makes the directories 0700 and the files 0600, whatever the umask', async () => {
    const dir = join(await tempDir(), 'cache', 'burrow');
    const store = new FileStore(dir);
    const umask = process.umask(0); // without explicit modes, files would come out 0666
    try {
      await store.set(credential());
    } finally {
      process.umask(umask);
    }
    assert.equal(await mode(dir), 0o700);
    assert.equal(await mode(store.location()), 0o700);
    assert.equal(await mode(store.path(PROXY)), 0o600);
  });

  it('tightens directories that already exist with looser modes', async () => {
    const dir = await tempDir();
    await chmod(dir, 0o755);
    await mkdir(join(dir, 'credentials'), { mode: 0o755 });
    await chmod(join(dir, 'credentials'), 0o755);
    const store = new FileStore(dir);
    await store.set(credential());
    assert.equal(await mode(dir), 0o700);
    assert.equal(await mode(store.location()), 0o700);
    assert.equal(await mode(store.path(PROXY)), 0o600);
  });

  it('a credential file other users can read is made 0600 again and used, with one line naming it and its proxy', async () => {
    const dir = await tempDir();
    await new FileStore(dir).set(credential());
    await new FileStore(dir).set(credential(OTHER, 'other-token'));
    await chmod(join(dir, 'credentials', entryName(PROXY)), 0o644); // as a copy or a restored backup leaves it
    await chmod(join(dir, 'credentials', entryName(OTHER)), 0o640);
    const said: string[] = [];
    const store = new FileStore(dir, { onInsecure: (line) => said.push(line) });
    assert.deepEqual(await store.get(PROXY), credential());
    assert.deepEqual(said, [text.credentialFileRepaired(store.path(PROXY), PROXY, '0644')]);
    assert.equal(await mode(store.path(PROXY)), 0o600);
    assert.equal((await store.get(PROXY))?.token, TOKEN);
    assert.equal(said.length, 1, 'said once');
    // Listing checks every entry the same way.
    assert.deepEqual((await store.list()).map((c) => c.proxy), [OTHER, PROXY]);
    assert.deepEqual(said.slice(1), [text.credentialFileRepaired(store.path(OTHER), OTHER, '0640')]);
    assert.equal(await mode(store.path(OTHER)), 0o600);
    // A file only its owner can use, 0400 say, is left as it is.
    await chmod(store.path(OTHER), 0o400);
    const quiet: string[] = [];
    assert.equal((await new FileStore(dir, { onInsecure: (line) => quiet.push(line) }).get(OTHER))?.token, 'other-token');
    assert.deepEqual(quiet, []);
    assert.equal(await mode(store.path(OTHER)), 0o400);
  });

  it('loose cache and credentials directories are made 0700 on any use, not only on a save, one line each', async () => {
    const dir = await tempDir();
    await new FileStore(dir).set(credential());
    await chmod(dir, 0o755);
    await chmod(join(dir, 'credentials'), 0o777);
    for (const use of [(s: FileStore) => s.get(PROXY), (s: FileStore) => s.list(), (s: FileStore) => s.delete(OTHER), (s: FileStore) => s.clear()]) {
      await chmod(dir, 0o755);
      await chmod(join(dir, 'credentials'), 0o777);
      const said: string[] = [];
      const store = new FileStore(dir, { onInsecure: (line) => said.push(line) });
      await use(store);
      await use(store);
      assert.deepEqual(said, [text.credentialDirRepaired(dir, '0755'), text.credentialDirRepaired(join(dir, 'credentials'), '0777')]);
      assert.equal(await mode(dir), 0o700);
      assert.equal(await mode(store.location()), 0o700);
    }
  });

  it('a file it cannot make private is not used (and says so); a directory it cannot is an error (exit 11)', { skip: immutableSkip() }, async () => {
    const dir = await tempDir();
    const said: string[] = [];
    const store = new FileStore(dir, { onInsecure: (line) => said.push(line) });
    await store.set(credential());
    const file = store.path(PROXY);
    await chmod(file, 0o644);
    // Root can chmod anything but an immutable file (chattr +i): as a file of another user is to its reader.
    await run('chattr', ['+i', file]);
    try {
      assert.equal(await store.get(PROXY), undefined);
      assert.deepEqual(said, [text.credentialFileNotPrivate(file, '0644', 'permission denied')]);
      assert.deepEqual(await store.list(), []);
    } finally {
      await run('chattr', ['-i', file]);
    }
    await chmod(store.location(), 0o755);
    await run('chattr', ['+i', store.location()]);
    try {
      const error = await new FileStore(dir).get(PROXY).then(() => undefined, (e: unknown) => e as CredentialStoreError);
      assert.equal(error?.code, 'BURROW_CREDENTIAL_STORE');
      assert.equal(error?.exitCode, ExitCode.credentialStore);
      assert.equal(error?.message, text.credentialDirNotPrivate(store.location(), '0755', 'permission denied'));
      assert.equal(error?.hint, text.credentialDirNotPrivateHint(store.location()));
    } finally {
      await run('chattr', ['-i', store.location()]);
    }
  });

  it('replaces entries atomically: 200 racing writers, a reader never sees a partial file', async () => {
    const corrupt: string[] = [];
    const store = new FileStore(await tempDir(), { onCorrupt: (path) => corrupt.push(path) });
    await store.set(credential(PROXY, 'initial'));
    const tokens = Array.from({ length: 200 }, (_, i) => `token-${i}-${'x'.repeat(i * 50)}`);
    const written = new Set(['initial', ...tokens]);

    let writing = true;
    const seen: string[] = [];
    const reader = (async () => {
      while (writing) {
        // Both ways in: through the store, and raw bytes parsed as a strict JSON document.
        const got = await store.get(PROXY);
        assert.ok(got, 'the entry vanished during a replace');
        seen.push(got.token);
        const raw = JSON.parse(await readFile(store.path(PROXY), 'utf8')) as { token: string };
        assert.ok(written.has(raw.token));
      }
    })();
    await Promise.all(tokens.map((token, i) => store.set({ ...credential(PROXY, token), storedAt: i })));
    writing = false;
    await reader;

    assert.ok(seen.length > 0);
    for (const token of seen) assert.ok(written.has(token), 'read a token nobody wrote');
    assert.deepEqual(corrupt, []);
    const final = await store.get(PROXY);
    assert.ok(final && tokens.includes(final.token));
    assert.deepEqual(await readdir(store.location()), [entryName(PROXY)], 'temporary files were left behind');
  });

  it('treats a damaged file as absent, reports it, and lists the rest', async () => {
    const corrupt: string[] = [];
    const store = new FileStore(await tempDir(), { onCorrupt: (path) => corrupt.push(path) });
    await store.set(credential());
    await store.set(credential(OTHER));
    await writeFile(store.path(PROXY), '{"version":1,"proxy":"https://proxy.corp.exa');
    assert.equal(await store.get(PROXY), undefined);
    assert.deepEqual(corrupt, [store.path(PROXY)]);
    assert.deepEqual((await store.list()).map((c) => c.proxy), [OTHER]);

    // Valid JSON naming another proxy (a file copied by hand) must not hand that proxy's token over.
    await writeFile(store.path(PROXY), await readFile(store.path(OTHER)));
    assert.equal(await store.get(PROXY), undefined);
    assert.deepEqual((await store.list()).map((c) => c.proxy), [OTHER]);

    // A new sign-in replaces the damaged file; clear removes damaged files too.
    await store.set(credential());
    assert.equal((await store.get(PROXY))?.token, TOKEN);
    await writeFile(join(store.location(), `${'0'.repeat(32)}.json`), 'not json');
    assert.equal(await store.clear(), 3);
    assert.deepEqual(await readdir(store.location()), []);
  });

  it('never puts a token in a listing', async () => {
    const store = new FileStore(await tempDir());
    await store.set(credential());
    const listed = await store.list();
    assert.equal(listed.length, 1);
    assert.ok(!('token' in listed[0]!));
    assert.ok(!JSON.stringify(listed).includes(TOKEN));
  });

  it('fails with BURROW_CREDENTIAL_STORE, without the token, when it cannot write', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'credentials'), 'a file where the directory should be');
    const store = new FileStore(dir);
    await assert.rejects(store.set(credential()), (error: Error & { code?: string; exitCode?: number }) => {
      assert.equal(error.code, 'BURROW_CREDENTIAL_STORE');
      assert.equal(error.exitCode, ExitCode.credentialStore);
      assert.ok(!error.message.includes(TOKEN));
      return true;
    });
  });
});

describe('selectStore (files)', () => {
  it('puts the file store under XDG_CACHE_HOME from the env it is given', async () => {
    const cache = await tempDir();
    const warnings: string[] = [];
    const store = await selectStore({ choice: 'file', env: { XDG_CACHE_HOME: cache }, warn: (l) => warnings.push(l) });
    assert.equal(store.kind, 'file');
    assert.equal(store.location(), join(cache, 'burrow', 'credentials'));
    await store.set(credential());
    assert.equal((await stat(join(cache, 'burrow', 'credentials', entryName(PROXY)))).isFile(), true);
    assert.deepEqual(warnings, []);
  });

  it('takes BURROW_CREDENTIAL_STORE when no flag is given, and warns about damaged files', async () => {
    const cache = await tempDir();
    const warnings: string[] = [];
    const store = await selectStore({ env: { XDG_CACHE_HOME: cache, BURROW_CREDENTIAL_STORE: 'file' }, warn: (l) => warnings.push(l) });
    assert.equal(store.kind, 'file');
    await store.set(credential());
    await writeFile(join(store.location(), entryName(PROXY)), '');
    assert.equal(await store.get(PROXY), undefined);
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0]!.includes(join(store.location(), entryName(PROXY))));
  });

  it('rejects an invalid BURROW_CREDENTIAL_STORE or flag value with BURROW_USAGE', async () => {
    await assert.rejects(
      selectStore({ env: { BURROW_CREDENTIAL_STORE: 'vault', XDG_CACHE_HOME: await tempDir() }, warn: () => {} }),
      { code: 'BURROW_USAGE', exitCode: ExitCode.usage },
    );
    assert.throws(() => parseStoreChoice('keyring'), { code: 'BURROW_USAGE' });
    assert.equal(parseStoreChoice('file'), 'file');
    assert.equal(parseStoreChoice(' Keychain '), 'keychain');
    assert.equal(parseStoreChoice('auto'), 'auto');
  });

  it('computes the cache directory from the env (XDG rules on Linux)', { skip: process.platform === 'darwin' || process.platform === 'win32' }, () => {
    assert.equal(cacheDir({ XDG_CACHE_HOME: '/x/cache', HOME: '/home/ada' }), '/x/cache/burrow');
    assert.equal(cacheDir({ HOME: '/home/ada' }), '/home/ada/.cache/burrow');
    // The XDG spec: a relative path is invalid and ignored.
    assert.equal(cacheDir({ XDG_CACHE_HOME: 'relative/cache', HOME: '/home/ada' }), '/home/ada/.cache/burrow');
  });

  it('loads no native module: importing select.ts and using files never touches the keychain binding', async () => {
    const select = pathToFileURL(join(repoRoot, 'dist', 'src', 'store', 'select.js')).href;
    const cache = await tempDir();
    // process.dlopen is how every .node addon (the keychain binding's keyring.*.node) gets loaded.
    const script = `
      const loaded = [];
      const dlopen = process.dlopen;
      process.dlopen = (module, file, ...rest) => { loaded.push(file); return dlopen(module, file, ...rest); };
      const { selectStore } = await import(${JSON.stringify(select)});
      const store = await selectStore({ choice: 'file', env: { XDG_CACHE_HOME: ${JSON.stringify(cache)} }, warn: () => {} });
      await store.set({ proxy: 'https://p.test:443', token: 't', storedAt: 1 });
      console.log(JSON.stringify(loaded));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    assert.deepEqual(JSON.parse(stdout), []);
  });
});
