/**
 * `burrow k8s` end to end: the real kubectl, whose kubeconfig user runs the real CLI as its exec
 * credential plugin, against the local proxy's HTTPS route to a fake Kubernetes API server.
 * kubectl runs on a pseudo-terminal where a sign-in may start (it then tells the plugin it is
 * interactive) and with a pipe as stdin where none may; sign-ins go through the scripted browser.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXPIRY_SKEW_SECONDS, tokenInfo } from '../../src/auth/jwt.js';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { encodeCredential, entryName } from '../../src/store/file.js';
import { browserEnv, browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { BURROW_BIN, runBurrow, stopAll, storedTokens, tempDir } from '../helpers/burrow.js';
import { type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { type KubeApi, startKubeApi } from '../helpers/kube-api.js';
import { kubectlInTerminal, requireKubectl, runKubectl, writeKubeconfig } from '../helpers/kubectl.js';
import { stopAllTerminals } from '../helpers/terminal.js';

const V1 = 'client.authentication.k8s.io/v1';
const V1BETA1 = 'client.authentication.k8s.io/v1beta1';

describe('burrow k8s: kubectl through the proxy', () => {
  let proxy: FakePomerium;
  let api: KubeApi;
  /** The API server as kubectl reaches it: the proxy's HTTPS route by prefix. */
  let server: string;
  let origin: string;

  before(async () => {
    requireKubectl();
    api = await startKubeApi(['web-1', 'web-2']);
    proxy = await startFakePomerium({ routes: [{ from: 'https://k8s.corp.test', prefix: '/k8s/', to: api.url }] });
    server = `${proxy.url}/k8s`;
    origin = `https://localhost:${proxy.port}`;
  });
  after(async () => {
    await stopAllTerminals();
    await stopAll();
    await proxy?.close();
    await api?.close();
  });

  /** A fresh user: own cache dir, own browser log, and the env kubectl passes on to burrow. */
  function user() {
    const cache = tempDir('burrow-k8s-');
    const log = join(cache, 'browser.log');
    return { cache, log, env: { XDG_CACHE_HOME: cache, ...browserEnv({ log }) } };
  }

  /** A kubeconfig whose user runs this burrow with the test CA and the scripted browser. */
  function kubeconfig(apiVersion: typeof V1 | typeof V1BETA1 = V1, interactiveMode: 'Never' | 'IfAvailable' = 'IfAvailable'): string {
    return writeKubeconfig({
      server,
      ca: proxy.caPath,
      apiVersion,
      command: process.execPath,
      args: [BURROW_BIN, 'k8s', 'exec-credential', server, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser],
      interactiveMode,
    });
  }

  /** Puts `token` in the file store as the cached sign-in for the proxy. */
  function cacheToken(cache: string, token: string): void {
    const dir = join(cache, 'burrow', 'credentials');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const info = tokenInfo(token);
    writeFileSync(join(dir, entryName(origin)), encodeCredential({ proxy: origin, token, user: info.user, expiresAt: info.expiresAt, storedAt: Date.now() }), { mode: 0o600 });
  }

  const pods = /NAME\s+READY\s+STATUS[\s\S]*web-1\s+1\/1\s+Running[\s\S]*web-2\s+1\/1\s+Running/;
  const notInteractive = (refused?: number) =>
    `burrow: error: ${text.k8sNotInteractive(origin, refused === undefined ? 'none' : { refused })} — ${text.k8sNotInteractiveHint(origin)}`;

  it('kubectl get pods with v1 and v1beta1 kubeconfigs: one browser sign-in for every run, parallel ones too; the API server sees the user', async () => {
    const u = user();
    const before = proxy.stats.signIns;
    const seen = api.requests.length;
    const first = await kubectlInTerminal(['get', 'pods'], kubeconfig(V1), u.env);
    assert.equal(first.code, 0, first.screen);
    assert.match(first.screen, pods);
    assert.equal(proxy.stats.signIns - before, 1);
    const [token] = storedTokens(u.cache);
    assert.ok(token !== undefined && !first.screen.includes(token), 'the token is not on the screen');

    // Signed in: a v1beta1 kubeconfig, on a terminal and without one, uses the same sign-in.
    const beta = await kubectlInTerminal(['get', 'pods'], kubeconfig(V1BETA1), u.env);
    assert.equal(beta.code, 0, beta.screen);
    assert.match(beta.screen, pods);
    const piped = await runKubectl(['get', 'pods'], kubeconfig(V1BETA1, 'Never'), u.env);
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, pods);
    assert.equal(piped.stderr, '', 'nothing said when all is well');
    const parallel = await Promise.all(Array.from({ length: 4 }, (_, i) => runKubectl(['get', 'pods'], kubeconfig(i % 2 ? V1 : V1BETA1, 'Never'), u.env)));
    for (const run of parallel) assert.equal(run.code, 0, run.stderr);
    assert.equal(proxy.stats.signIns - before, 1, 'still the one sign-in');
    assert.equal(browserLaunches(u.log).length, 1);

    // A new user, five kubectl at once on terminals: one of them signs in, the others wait for it.
    const v = user();
    const runs = await Promise.all(Array.from({ length: 5 }, (_, i) => kubectlInTerminal(['get', 'pods'], kubeconfig(i % 2 ? V1 : V1BETA1), v.env, 60_000)));
    runs.forEach((run, i) => {
      assert.equal(run.code, 0, `kubectl ${i}: ${run.screen}`);
      assert.match(run.screen, pods);
    });
    assert.equal(browserLaunches(v.log).length, 1, 'one browser for five kubectl');
    assert.equal(proxy.stats.signIns - before, 2);

    const reached = api.requests.slice(seen);
    assert.ok(reached.some((r) => r.url.startsWith('/api/v1/namespaces/default/pods')));
    for (const request of reached) {
      assert.equal(request.email, 'alice@corp.test', request.url);
      assert.equal(request.authorization, undefined, 'the proxy does not pass the user token on');
    }
  });

  it('not interactive (stdin not a terminal, or interactiveMode Never): no browser, one line naming burrow login, kubectl fails', async () => {
    const u = user();
    const logins = proxy.stats.loginRequests;
    for (const mode of ['Never', 'IfAvailable'] as const) {
      const run = await runKubectl(['get', 'pods'], kubeconfig(V1, mode), u.env);
      assert.notEqual(run.code, 0);
      assert.ok(run.stderr.includes(`${notInteractive()}\n`), run.stderr);
      assert.doesNotMatch(run.stdout, /web-1/);
    }
    // A cached token the proxy refuses (another proxy's key): said so, and forgotten.
    const other = await startFakePomerium();
    try {
      cacheToken(u.cache, other.mintToken());
    } finally {
      await other.close();
    }
    const refused = await runKubectl(['get', 'pods'], kubeconfig(V1, 'Never'), u.env);
    assert.notEqual(refused.code, 0);
    assert.ok(refused.stderr.includes(notInteractive(401)), refused.stderr);
    assert.deepEqual(storedTokens(u.cache), []);
    // One cut off on its way into the cache is not even sent.
    cacheToken(u.cache, 'eyJhbGciOiJFUzI1NiJ9.eyJ');
    const damaged = await runKubectl(['get', 'pods'], kubeconfig(V1, 'Never'), u.env);
    assert.notEqual(damaged.code, 0);
    assert.ok(damaged.stderr.includes(text.k8sNotInteractive(origin, 'damaged')), damaged.stderr);
    assert.equal(browserLaunches(u.log).length, 0);
    assert.equal(proxy.stats.loginRequests, logins, 'no sign-in was started');
  });

  it('a cached token the proxy refuses: kubectl on a terminal signs in again, the line says why', async () => {
    const u = user();
    const other = await startFakePomerium();
    try {
      cacheToken(u.cache, other.mintToken());
    } finally {
      await other.close();
    }
    const before = proxy.stats.signIns;
    const run = await kubectlInTerminal(['get', 'pods'], kubeconfig(V1), u.env);
    assert.equal(run.code, 0, run.screen);
    assert.match(run.screen, pods);
    assert.ok(run.screen.includes(text.cachedSignInRefused(origin, 401)), run.screen);
    assert.equal(proxy.stats.signIns - before, 1);
  });

  it('exec-credential itself: the apiVersion asked for, expirationTimestamp from exp less the skew (none without exp), a check not repeated at once', async () => {
    const u = user();
    const token = proxy.mintToken({ ttlSeconds: 3600 });
    cacheToken(u.cache, token);
    const exec = (info: string | undefined) =>
      runBurrow(['k8s', 'exec-credential', server, '--alternate-ca-path', proxy.caPath], {
        env: { ...u.env, ...(info === undefined ? {} : { KUBERNETES_EXEC_INFO: info }) },
      });
    const checks = proxy.stats.routesRequests[200] ?? 0;
    const beta = await exec(JSON.stringify({ kind: 'ExecCredential', apiVersion: V1BETA1, spec: { interactive: false } }));
    assert.equal(beta.code, 0, beta.stderr);
    assert.equal(beta.stderr, '');
    const lines = beta.stdout.toString().split('\n');
    assert.equal(lines.length, 2, 'one line');
    const exp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp as number;
    assert.deepEqual(JSON.parse(lines[0]!), {
      apiVersion: V1BETA1,
      kind: 'ExecCredential',
      status: { token: `Pomerium-${token}`, expirationTimestamp: new Date((exp - EXPIRY_SKEW_SECONDS) * 1000).toISOString().replace('.000Z', 'Z') },
    });
    assert.equal(proxy.stats.routesRequests[200], checks + 1, 'checked with the routes API');

    // Without KUBERNETES_EXEC_INFO: v1. Just checked: not asked again.
    const plain = await exec(undefined);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(JSON.parse(plain.stdout.toString()).apiVersion, V1);
    assert.equal(proxy.stats.routesRequests[200], checks + 1, 'a token accepted moments ago is not checked again');
    const memos = join(u.cache, 'burrow', 'checks');
    for (const file of readdirSync(memos)) assert.ok(!readFileSync(join(memos, file), 'utf8').includes(token), 'the memo holds no token');

    const forever = proxy.mintToken({ noExpiry: true });
    cacheToken(u.cache, forever);
    const noExp = await exec(JSON.stringify({ kind: 'ExecCredential', apiVersion: V1, spec: { interactive: false } }));
    assert.equal(noExp.code, 0, noExp.stderr);
    const credential = JSON.parse(noExp.stdout.toString()) as { status: Record<string, unknown> };
    assert.deepEqual(credential.status, { token: `Pomerium-${forever}` }, 'no expirationTimestamp without exp');

    for (const [info, line] of [
      ['{"apiVersion": ', `${text.execInfoNotJson} — ${text.execInfoHint}`],
      ['[1]', `${text.execInfoNotObject} — ${text.execInfoHint}`],
      [JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1alpha1' }), text.execInfoApiVersion('client.authentication.k8s.io/v1alpha1')],
    ] as const) {
      const bad = await exec(info);
      assert.equal(bad.code, ExitCode.usage, bad.stderr);
      assert.equal(bad.stdout.length, 0);
      assert.equal(bad.stderr.split('\n').length, 2, bad.stderr);
      assert.ok(bad.stderr.startsWith(`burrow: error: ${line}`), bad.stderr);
    }
  });

  it('kubeconfig output works as-is with kubectl; flush-credentials forgets the sign-in', async () => {
    const u = user();
    const printed = await runBurrow(['k8s', 'kubeconfig', server, '--name', 'corp', '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser], { env: u.env });
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stderr, '');
    const file = join(tempDir('burrow-kubeconfig-'), 'config');
    writeFileSync(file, printed.stdout);

    const before = proxy.stats.signIns;
    const signIn = await kubectlInTerminal(['get', 'pods'], file, u.env);
    assert.equal(signIn.code, 0, signIn.screen);
    assert.match(signIn.screen, pods);
    assert.equal(proxy.stats.signIns - before, 1);
    const cached = await runKubectl(['get', 'pods'], file, u.env);
    assert.equal(cached.code, 0, cached.stderr);
    assert.match(cached.stdout, pods);
    assert.equal((await runKubectl(['config', 'current-context'], file, u.env)).stdout.trim(), 'corp');
    // YAML that a real parser reads back as written, whatever the name holds.
    const odd = `it's "corp": #1 - [x]`;
    const oddConfig = join(tempDir('burrow-kubeconfig-'), 'config');
    writeFileSync(oddConfig, (await runBurrow(['k8s', 'kubeconfig', server, '--name', odd], { env: u.env })).stdout);
    const view = JSON.parse((await runKubectl(['config', 'view', '-o', 'json'], oddConfig, u.env)).stdout) as {
      'current-context': string;
      users: Array<{ user: { exec: { args: string[] } } }>;
    };
    assert.equal(view['current-context'], odd);
    assert.deepEqual(view.users[0]?.user.exec.args.slice(-3), ['k8s', 'exec-credential', server]);

    const flushed = await runBurrow(['k8s', 'flush-credentials', server], { env: u.env });
    assert.equal(flushed.code, 0, flushed.stderr);
    assert.equal(flushed.stderr, `burrow: ${text.loggedOut(origin)}\n`);
    assert.deepEqual(storedTokens(u.cache), []);
    assert.deepEqual(readdirSync(join(u.cache, 'burrow', 'checks')), [], 'the memo of its last check went too');
    const after = await runKubectl(['get', 'pods'], file, u.env);
    assert.notEqual(after.code, 0);
    assert.ok(after.stderr.includes(notInteractive()), after.stderr);

    const again = await runBurrow(['k8s', 'flush-credentials', '--json'], { env: u.env });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout.toString()), { signed_out: [] });
  });
});
