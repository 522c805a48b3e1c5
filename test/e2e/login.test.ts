/**
 * `burrow login` through the real CLI against the local proxy: what it says when already signed
 * in (checked with the proxy's routes API), --force, the ways to name the proxy, tokens without
 * `exp`, and the line naming a cached sign-in the proxy refused before a new one starts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, storedTokens } from '../helpers/burrow.js';
import { startFakePomerium } from '../helpers/fake-pomerium.js';
import { cacheToken, testUser } from '../helpers/user.js';
import { DEST, startWorld, suiteWorld, type World } from '../helpers/world.js';

const originOf = (world: World) => `https://localhost:${world.proxy.port}`;

function login(world: World, proxy: string, env: NodeJS.ProcessEnv, ...extra: string[]) {
  return runBurrow(['login', proxy, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath, ...extra], { env });
}

const user = () => testUser('burrow-login-');

describe('burrow login', () => {
  const world = suiteWorld({ unauthenticatedStatus: 401 });

  it('says who is signed in until when instead of signing in again; --force does; a bare host or a page URL names the proxy', async () => {
    const u = user();
    const origin = originOf(world);
    const first = await login(world, `localhost:${world.proxy.port}`, u.env);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(first.stderr.includes(text.signedIn(origin, 'alice@corp.test', 'expires in 60 min')), first.stderr);
    const [token] = storedTokens(u.cache);

    const checked = world.proxy.stats.routesRequests[200] ?? 0;
    const again = await login(world, `${world.proxy.url}/some/page?x=1#top`, u.env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stderr.trim(), `burrow: ${text.alreadySignedIn(origin, 'alice@corp.test', 'expires in 60 min')}`);
    assert.equal(browserLaunches(u.log).length, 1, 'no second sign-in');
    assert.equal(world.proxy.stats.routesRequests[200], checked + 1, 'the cached token was checked with the proxy');
    assert.deepEqual(storedTokens(u.cache), [token]);

    const forced = await login(world, world.proxy.url, u.env, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.ok(forced.stderr.includes(text.signedIn(origin, 'alice@corp.test', 'expires in 60 min')), forced.stderr);
    assert.equal(browserLaunches(u.log).length, 2, '--force signs in again');
    assert.notDeepEqual(storedTokens(u.cache), [token]);

    const bad = await runBurrow(['login', 'ftp://localhost'], { env: u.env });
    assert.equal(bad.code, ExitCode.usage);
    assert.match(bad.stderr, /^burrow: error: invalid proxy "ftp:\/\/localhost": the scheme "ftp:\/\/" is not supported — /);
  });

  it('a cached sign-in the proxy refuses is named in one line before the new sign-in, by login and by a tunnel', async () => {
    const other = await startFakePomerium();
    try {
      const u = user();
      const origin = originOf(world);
      // A token of another proxy's key, as after a key rotation: well formed, refused with 401.
      cacheToken(u.cache, origin, other.mintToken());
      const relogin = await login(world, world.proxy.url, u.env);
      assert.equal(relogin.code, 0, relogin.stderr);
      const refused = relogin.stderr.indexOf(text.cachedSignInRefused(origin, 401));
      assert.ok(refused >= 0, relogin.stderr);
      assert.ok(refused < relogin.stderr.indexOf(text.signedIn(origin, 'alice@corp.test', 'expires in 60 min')), relogin.stderr);
      assert.equal(browserLaunches(u.log).length, 1);

      cacheToken(u.cache, origin, other.mintToken());
      const tunnel = await runBurrow(world.tcpArgs(DEST, '--listen', '-', '--browser-cmd', followBrowser), { env: u.env, input: 'after refusal' });
      assert.equal(tunnel.stdout.toString(), 'after refusal', tunnel.stderr);
      // Stdio mode shows warnings and notices only: this line is one of them, once.
      assert.equal(tunnel.stderr.split(text.cachedSignInRefused(origin, 401)).length - 1, 1, tunnel.stderr);
      assert.equal(browserLaunches(u.log).length, 2);
    } finally {
      await other.close();
    }
  });

  it('tokens without exp (Pomerium since v0.32.6) on a proxy without the routes API: "no expiry known", and reused', async () => {
    const w = await startWorld({ noExpiry: true, routesApi: false });
    try {
      const u = user();
      const origin = originOf(w);
      const first = await login(w, w.proxy.url, u.env);
      assert.equal(first.code, 0, first.stderr);
      assert.ok(first.stderr.includes(text.signedIn(origin, 'alice@corp.test', text.noExpiryKnown)), first.stderr);
      const again = await login(w, w.proxy.url, u.env);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stderr.includes(text.alreadySignedIn(origin, 'alice@corp.test', text.noExpiryKnown)), again.stderr);
      assert.equal(w.proxy.stats.routesRequests[404], 1, 'asked the proxy, which cannot tell');
      const tunnel = await runBurrow(w.tcpArgs(DEST, '--listen', '-'), { env: u.env, input: 'no exp' });
      assert.equal(tunnel.stdout.toString(), 'no exp', tunnel.stderr);
      assert.equal(tunnel.stderr, '');
      assert.equal(browserLaunches(u.log).length, 1);
    } finally {
      await w.close();
    }
  });
});
