/**
 * `burrow token <proxy>` through the real CLI: the raw JWT alone on stdout, used by real curl
 * against the local proxy's routes API (an endpoint that wants a sign-in); the first use signs
 * in through the scripted browser, the next reuses the cached token; `--check` asks the proxy
 * first and signs in again when it refuses; with no way to sign in it fails at once (exit 3).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, storedTokens, tempDir } from '../helpers/burrow.js';
import { startFakePomerium } from '../helpers/fake-pomerium.js';
import { cacheToken, testUser } from '../helpers/user.js';
import { suiteWorld } from '../helpers/world.js';

const run = promisify(execFile);

const user = () => testUser('burrow-token-');

describe('burrow token', () => {
  const world = suiteWorld();

  /**
   * Real curl, as the README shows it: `curl -H "Authorization: Bearer Pomerium-$(burrow token …)"`
   * in a shell, against the routes API. Returns curl's HTTP status, the body and burrow's stderr.
   */
  async function curlWithToken(env: NodeJS.ProcessEnv, ...extra: string[]) {
    const burrow = [process.execPath, BURROW_BIN, 'token', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath, ...extra]
      .map((a) => `'${a}'`)
      .join(' ');
    const script = `curl -sS --max-time 20 --cacert '${world.proxy.caPath}' -o "$BODY" -w '%{http_code}' -H "Authorization: Bearer Pomerium-$(${burrow} 2>"$ERR")" '${world.proxy.url}/.pomerium/api/v1/routes'`;
    const dir = tempDir('burrow-curl-');
    const body = join(dir, 'body');
    const err = join(dir, 'err');
    const { stdout } = await run('/bin/sh', ['-c', script], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, BURROW_CREDENTIAL_STORE: 'file', NO_COLOR: '1', BODY: body, ERR: err, ...env },
      timeout: 40_000,
    });
    return { status: Number(stdout), body: readFileSync(body, 'utf8'), stderr: readFileSync(err, 'utf8') };
  }

  it('curl with $(burrow token …): the first use signs in through the browser, the second reuses the cached token', async () => {
    const u = user();
    const first = await curlWithToken(u.env);
    assert.equal(first.status, 200, first.stderr);
    assert.ok((JSON.parse(first.body) as { routes: unknown[] }).routes.length > 0);
    assert.equal(browserLaunches(u.log).length, 1, 'signed in once');
    const [stored] = storedTokens(u.cache);
    assert.ok(stored);

    const second = await curlWithToken(u.env);
    assert.equal(second.status, 200, second.stderr);
    assert.equal(second.stderr, '', 'nothing to say when the cached token is used');
    assert.equal(browserLaunches(u.log).length, 1, 'no second sign-in');
    assert.deepEqual(storedTokens(u.cache), [stored]);
  });

  it('stdout is exactly the token and a newline; a bare host names the proxy too', async () => {
    const u = user();
    const port = world.proxy.port;
    const r = await runBurrow(['token', `localhost:${port}`, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], { env: u.env });
    assert.equal(r.code, 0, r.stderr);
    const [stored] = storedTokens(u.cache);
    assert.equal(r.stdout.toString(), `${stored}\n`);
    assert.ok(world.proxy.verifyToken(stored!), 'a token the proxy signed');
    assert.ok(!r.stderr.includes(stored!), 'never on stderr');
    const again = await runBurrow(['token', world.proxy.url], { env: u.env });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.toString(), `${stored}\n`);
    assert.equal(again.stderr, '');
  });

  it('--check: a cached token the proxy refuses is replaced by a new sign-in; without --check the cached one is printed as is', async () => {
    const other = await startFakePomerium();
    try {
      const u = user();
      const foreign = other.mintToken();
      cacheToken(u.cache, world.proxy.url, foreign);
      const unchecked = await runBurrow(['token', world.proxy.url, '--browser-cmd', followBrowser], { env: u.env });
      assert.equal(unchecked.stdout.toString(), `${foreign}\n`, 'no --check: no request to the proxy');
      assert.deepEqual(browserLaunches(u.log), []);

      const checked = await curlWithToken(u.env, '--check');
      assert.equal(checked.status, 200, checked.stderr);
      assert.ok(checked.stderr.includes(text.cachedSignInRefused(world.proxy.url, 401)), checked.stderr);
      assert.equal(browserLaunches(u.log).length, 1);
      const [fresh] = storedTokens(u.cache);
      assert.notEqual(fresh, foreign);

      const stillGood = await runBurrow(['token', world.proxy.url, '--check', '--alternate-ca-path', world.proxy.caPath], { env: u.env });
      assert.equal(stillGood.stdout.toString(), `${fresh}\n`);
      assert.equal(browserLaunches(u.log).length, 1, 'a token the proxy accepts is kept');
    } finally {
      await other.close();
    }
  });

  it('a service account (BURROW_SERVICE_ACCOUNT, --service-account-file) is printed as is; --check with one the proxy refuses: exit 3, never a browser', async () => {
    const other = await startFakePomerium();
    try {
      const u = user();
      const machine = world.proxy.mintToken();
      const fromEnv = await runBurrow(['token', world.proxy.url, '--browser-cmd', followBrowser], { env: { ...u.env, BURROW_SERVICE_ACCOUNT: machine } });
      assert.equal(fromEnv.code, 0, fromEnv.stderr);
      assert.equal(fromEnv.stdout.toString(), `${machine}\n`);
      const file = join(tempDir('burrow-token-sa-'), 'token');
      writeFileSync(file, `${machine}\n`, { mode: 0o600 });
      const checked = await runBurrow(['token', world.proxy.url, '--check', '--service-account-file', file, '--alternate-ca-path', world.proxy.caPath], { env: u.env });
      assert.equal(checked.code, 0, checked.stderr);
      assert.equal(checked.stdout.toString(), `${machine}\n`);
      assert.deepEqual(storedTokens(u.cache), [], 'a service account is never stored');

      const foreign = other.mintToken();
      const refused = await runBurrow(['token', world.proxy.url, '--check', '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], {
        env: { ...u.env, BURROW_SERVICE_ACCOUNT: foreign },
      });
      assert.equal(refused.code, ExitCode.authRequired, refused.stderr);
      assert.equal(refused.stdout.length, 0);
      const line = oneLineFailure(refused.stderr, foreign);
      assert.ok(line.includes(text.serviceAccountRejected(world.proxy.url, 401)), line);
      assert.ok(line.endsWith(text.serviceAccountRejectedHint), line);
      assert.deepEqual(browserLaunches(u.log), []);
    } finally {
      await other.close();
    }
  });

  it('no token and no way to sign in (no browser, no terminal): one line, exit 3, nothing on stdout', async () => {
    const u = user();
    const r = await runBurrow(['token', world.proxy.url, '--no-browser', '--alternate-ca-path', world.proxy.caPath], { env: u.env, wrapper: ['setsid', '-w'] });
    assert.equal(r.code, ExitCode.authRequired);
    assert.equal(r.stdout.length, 0);
    const line = oneLineFailure(r.stderr);
    assert.ok(line.includes(text.noWayToSignIn(world.proxy.url, text.noBrowserBecause('no-browser'))), line);
    assert.ok(line.endsWith(text.noWayToSignInHint(world.proxy.url)), line);
  });

  it('a usage error for what is not a proxy (exit 2)', async () => {
    const r = await runBurrow(['token', 'ftp://localhost'], { env: user().env });
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /^burrow: error: invalid proxy "ftp:\/\/localhost"/);
  });
});
