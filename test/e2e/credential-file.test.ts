/**
 * Credential files and directories that other users could read, through the real binary on real
 * files: a sign-in made by `burrow login`, then its file and directories loosened as a copy or a
 * restored backup leaves them. burrow makes them private again, says so once, and goes on.
 */
import assert from 'node:assert/strict';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { text } from '../../src/output/messages.js';
import { entryName } from '../../src/store/file.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, stdioEcho, storedTokens, tempDir } from '../helpers/burrow.js';
import { DEST, suiteWorld } from '../helpers/world.js';

const mode = (path: string) => statSync(path).mode & 0o777;
const lines = (stderr: string) => stderr.split('\n').filter((l) => l !== '');

describe('credential files open to other users', () => {
  const world = suiteWorld();

  async function signedIn() {
    const cache = tempDir('burrow-credfile-');
    const log = join(cache, 'browser.log');
    const env = { XDG_CACHE_HOME: cache, ...browserEnv({ log }) };
    const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], { env });
    assert.equal(login.code, 0, login.stderr);
    const root = join(cache, 'burrow');
    const dir = join(root, 'credentials');
    const file = join(dir, entryName(world.proxy.url));
    assert.equal(mode(file), 0o600, 'burrow writes 0600');
    return { cache, log, env, root, dir, file };
  }

  it('a tunnel with a 0644 token file and 0755 directories: repaired, one line each, the cached token used, silent next time', async () => {
    const u = await signedIn();
    chmodSync(u.file, 0o644);
    chmodSync(u.dir, 0o755);
    chmodSync(u.root, 0o755);

    const args = [...world.tcpArgs(DEST, '--listen', '-'), '--browser-cmd', followBrowser];
    const first = await stdioEcho(args, u.env, 'through the tunnel');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.toString(), 'through the tunnel');
    assert.deepEqual(lines(first.stderr), [
      `burrow: warning: ${text.credentialDirRepaired(u.root, '0755')}`,
      `burrow: warning: ${text.credentialDirRepaired(u.dir, '0755')}`,
      `burrow: warning: ${text.credentialFileRepaired(u.file, world.proxy.url, '0644')}`,
    ]);
    assert.equal(mode(u.file), 0o600);
    assert.equal(mode(u.dir), 0o700);
    assert.equal(mode(u.root), 0o700);
    assert.equal(browserLaunches(u.log).length, 1, 'the cached token was used: no second sign-in');
    const [token] = storedTokens(u.cache);
    assert.ok(token && !first.stderr.includes(token), 'no token in the lines');

    const second = await stdioEcho(args, u.env, 'again');
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.toString(), 'again');
    assert.equal(second.stderr, '', 'nothing left to say');
  });

  it('status and logout repair too; with --json the line is a JSON warning on stderr and stdout stays the data', async () => {
    const u = await signedIn();
    chmodSync(u.file, 0o604);
    const status = await runBurrow(['status', '--json'], { env: u.env });
    assert.equal(status.code, 0, status.stderr);
    const [warning, ...rest] = lines(status.stderr).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(rest, []);
    assert.equal(warning!.event, 'log');
    assert.equal(warning!.level, 'warn');
    assert.equal(warning!.message, text.credentialFileRepaired(u.file, world.proxy.url, '0604'));
    assert.equal((JSON.parse(status.stdout.toString()) as { sign_ins: unknown[] }).sign_ins.length, 1);
    assert.equal(mode(u.file), 0o600);

    chmodSync(u.dir, 0o750);
    const logout = await runBurrow(['logout', world.proxy.url], { env: u.env });
    assert.equal(logout.code, 0, logout.stderr);
    assert.deepEqual(lines(logout.stderr), [`burrow: warning: ${text.credentialDirRepaired(u.dir, '0750')}`, `burrow: ${text.loggedOut(world.proxy.url)}`]);
    assert.equal(mode(u.dir), 0o700);
  });
});
