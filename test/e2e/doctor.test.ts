/**
 * `burrow doctor` through the real CLI against real parts: the local proxy (real TLS, the test
 * PKI, its mutual-TLS mode, routes with policies, an upstream that is down), a cached sign-in
 * obtained through the scripted browser, Debian's real squid as the forward proxy. Every failure
 * class the tunnel tests produce is named at its step, with the code and fix `burrow tcp` gives
 * and its exit code; the steps after it that need it are skipped; the token is never printed,
 * in the lines or in the JSON; and doctor never opens a browser.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { browserLaunches, followBrowser } from '../helpers/browsers/index.js';
import { runBurrow, stopAll, storedTokens } from '../helpers/burrow.js';
import { startFakePomerium } from '../helpers/fake-pomerium.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { freePort } from '../helpers/processes.js';
import { requireSquid, type Squid, startSquid, stopAllSquid } from '../helpers/squid.js';
import { cacheToken, testUser } from '../helpers/user.js';
import { DEST, startWorld, type World } from '../helpers/world.js';
import type { StepJson } from '../../src/cli/commands/doctor.js';

interface DoctorJson {
  ok: boolean;
  proxy: string;
  dest: string;
  exit_code: number;
  steps: StepJson[];
}

const STEPS = ['dns', 'forward-proxy', 'tcp', 'tls', 'credential-store', 'sign-in', 'tunnel', 'clock'];

/** `burrow doctor … --json`, parsed; asserts the JSON is one document on stdout with the exit code in it, and never a token. */
async function doctorJson(args: string[], env: NodeJS.ProcessEnv, secrets: string[] = []) {
  const r = await runBurrow(['doctor', ...args, '--json'], { env, timeoutMs: 30_000 });
  const out = r.stdout.toString();
  assert.equal(out.split('\n').filter(Boolean).length, 1, `one JSON document on stdout: ${out}\n${r.stderr}`);
  const doc = JSON.parse(out) as DoctorJson;
  assert.equal(doc.exit_code, r.code);
  assert.equal(doc.ok, r.code === 0);
  assert.deepEqual(doc.steps.map((s) => s.step), STEPS);
  for (const secret of secrets) {
    assert.ok(!out.includes(secret), 'the token is not in the JSON');
    assert.ok(!r.stderr.includes(secret), 'the token is not on stderr');
  }
  assert.doesNotMatch(out, /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/, 'nothing token-shaped in the JSON');
  const step = (name: string) => doc.steps.find((s) => s.step === name)!;
  return { ...r, doc, step };
}

/** The steps as [step, ok, skipped] for comparison. */
const shape = (doc: DoctorJson) => doc.steps.map((s) => `${s.step}:${s.skipped ? 'skipped' : s.ok ? 'ok' : 'FAILED'}`);

const user = () => testUser('burrow-doctor-', { BROWSER: followBrowser });

describe('burrow doctor', () => {
  let world: World;
  let closedPort: number;
  before(async () => {
    closedPort = await freePort();
    world = await startWorld({
      extraRoutes: [
        { from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] },
        { from: 'tcp+https://down.corp.test:22', to: `tcp://127.0.0.1:${closedPort}` },
      ],
    });
    world.proxy.addRoute({ from: 'wss://ws.corp.test/echo', to: `tcp://${world.echo.address}` });
    // CONNECT-UDP routes (the tunnel step opens and closes at once: nothing need listen there).
    world.proxy.addRoute({ from: 'udp+https://dns.corp.test:53', to: 'udp://127.0.0.1:9' });
    world.proxy.addRoute({ from: 'udp+https://bob-dns.corp.test:53', to: 'udp://127.0.0.1:9', allow: ['bob@corp.test'] });
  });
  after(async () => {
    await stopAll();
    await world.close();
  });
  const args = (dest = DEST, ...extra: string[]) => [dest, '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, ...extra];
  const origin = () => world.proxy.url;

  it('all pass with a cached sign-in from the scripted browser: exit 0, every step ✓, one line each; the token nowhere; no browser', async () => {
    const u = user();
    const login = await runBurrow(['login', world.proxy.url, '--browser-cmd', followBrowser, '--alternate-ca-path', world.proxy.caPath], { env: u.env });
    assert.equal(login.code, 0, login.stderr);
    const [token] = storedTokens(u.cache);
    assert.ok(token);
    const signIns = world.proxy.stats.signIns;

    const r = await runBurrow(['doctor', ...args()], { env: u.env });
    assert.equal(r.code, ExitCode.ok, r.stderr);
    assert.equal(r.stdout.length, 0, 'nothing on stdout');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines[0], `burrow: ${text.doctorChecking(DEST, origin())}`);
    const stepLines = lines.slice(1, -1);
    assert.equal(stepLines.length, STEPS.length, r.stderr);
    STEPS.forEach((step, i) => assert.ok(stepLines[i]!.startsWith(`burrow: ✓ ${text.doctorStep(step)}: `), stepLines[i]));
    assert.equal(lines.at(-1), `burrow: ${text.doctorPassed(STEPS.length)}`);
    assert.ok(r.stderr.includes(text.signInAccepted(text.signInFound('alice@corp.test', 'expires in 60 min'))), r.stderr);
    assert.ok(r.stderr.includes(text.tunnelOpened('CONNECT', DEST)), r.stderr);
    assert.match(r.stderr, /✓ TLS: TLSv1\.[23], ALPN http\/1\.1; certificate for localhost issued by /);
    assert.ok(!r.stderr.includes(token!), 'the token is not printed');

    const j = await doctorJson(args(), u.env, [token!]);
    assert.equal(j.code, ExitCode.ok, j.stderr);
    assert.ok(j.doc.steps.every((s) => s.ok && !s.skipped && s.code === undefined), JSON.stringify(j.doc));
    assert.equal(j.doc.proxy, origin());
    assert.equal(j.doc.dest, DEST);
    assert.equal(j.stderr, '', 'nothing on stderr with --json when all is well');

    assert.equal(browserLaunches(u.log).length, 1, 'doctor never opens a browser (only login did)');
    assert.equal(world.proxy.stats.signIns, signIns, 'doctor never signs in');
  });

  it('a WebSocket destination: the upgrade is the tunnel step', async () => {
    const r = await doctorJson([`wss://localhost:${world.proxy.port}/echo`, '--alternate-ca-path', world.proxy.caPath], world.env, [world.token]);
    assert.equal(r.code, ExitCode.ok, JSON.stringify(r.doc));
    assert.equal(r.step('tunnel').detail, text.tunnelOpened('WebSocket', `wss://localhost:${world.proxy.port}/echo`));
  });

  it('a udp+https:// destination: the CONNECT-UDP request is the tunnel step; a policy refusal fails it (exit 4); --transport does not go with it', async () => {
    const dest = (host: string) => `udp+https://${host}:53`;
    const ok = await doctorJson(args(dest('dns.corp.test')), world.env, [world.token]);
    assert.equal(ok.code, ExitCode.ok, JSON.stringify(ok.doc));
    assert.equal(ok.doc.dest, 'dns.corp.test:53');
    assert.equal(ok.step('tunnel').detail, text.tunnelOpened('CONNECT-UDP', 'dns.corp.test:53'));
    const denied = await doctorJson(args(dest('bob-dns.corp.test')), world.env, [world.token]);
    assert.equal(denied.code, ExitCode.accessDenied, JSON.stringify(denied.doc));
    assert.equal(denied.step('tunnel').code, 'BURROW_ACCESS_DENIED');
    const mixed = await runBurrow(['doctor', ...args(dest('dns.corp.test'), '--transport', 'websocket')], { env: world.env });
    assert.equal(mixed.code, ExitCode.usage);
    assert.equal(mixed.stderr, `burrow: error: ${text.conflictingFlags('a udp+https:// destination', '--transport')} — ${text.doctorUdpTransportHint}\n`);
  });

  it('unknown host (a name under .invalid): the name lookup fails (exit 7, BURROW_DNS), what needs it is skipped', async () => {
    const r = await doctorJson(['git.nowhere.invalid:22'], world.env, [world.token]);
    assert.equal(r.code, ExitCode.proxyUnreachable);
    assert.equal(r.step('dns').code, 'BURROW_DNS');
    assert.equal(r.step('dns').hint, text.dnsFailedHint);
    assert.deepEqual(shape(r.doc), ['dns:FAILED', 'forward-proxy:ok', 'tcp:skipped', 'tls:skipped', 'credential-store:ok', 'sign-in:skipped', 'tunnel:skipped', 'clock:skipped']);
    assert.equal(r.step('tcp').detail, text.doctorSkipped(text.doctorStep('dns')));
    const human = await runBurrow(['doctor', 'git.nowhere.invalid:22'], { env: world.env });
    assert.equal(human.code, ExitCode.proxyUnreachable);
    assert.ok(human.stderr.includes(`burrow: ✗ ${text.doctorStep('dns')}: ${text.dnsFailed('https://git.nowhere.invalid:443', DEST.replace('git.corp.test', 'git.nowhere.invalid'), 'git.nowhere.invalid')} — ${text.dnsFailedHint}`), human.stderr);
    assert.ok(human.stderr.includes(`burrow: - ${text.doctorStep('tls')}: ${text.doctorSkipped(text.doctorStep('dns'))}`), human.stderr);
    assert.ok(human.stderr.trim().endsWith(text.doctorFailed(text.doctorStep('dns'))), human.stderr);
  });

  it('nothing listening (a closed loopback port): the TCP connection fails (exit 7)', async () => {
    const proxy = `https://127.0.0.1:${closedPort}`;
    const r = await doctorJson([DEST, '--pomerium-url', proxy], world.env, [world.token]);
    assert.equal(r.code, ExitCode.proxyUnreachable);
    assert.equal(r.step('dns').detail, text.dnsLiteral('127.0.0.1'));
    assert.equal(r.step('tcp').code, 'BURROW_PROXY_UNREACHABLE');
    assert.equal(r.step('tcp').detail, text.refused(proxy, DEST));
    assert.deepEqual(shape(r.doc).slice(2), ['tcp:FAILED', 'tls:skipped', 'credential-store:ok', 'sign-in:skipped', 'tunnel:skipped', 'clock:skipped']);
  });

  it('TLS untrusted (no --alternate-ca-path): the TLS step fails (exit 8) with the CA hint', async () => {
    const r = await doctorJson([DEST, '--pomerium-url', world.proxy.url], world.env, [world.token]);
    assert.equal(r.code, ExitCode.tls);
    assert.equal(r.step('tls').code, 'BURROW_TLS_UNTRUSTED');
    assert.equal(r.step('tls').hint, text.tlsUntrustedHint);
    assert.deepEqual(shape(r.doc).slice(0, 4), ['dns:ok', 'forward-proxy:ok', 'tcp:ok', 'tls:FAILED']);
    assert.ok(r.step('sign-in').skipped && r.step('tunnel').skipped && r.step('clock').skipped);
  });

  it('TLS wrong host name (the wrong-host certificate): the TLS step fails (exit 8, BURROW_TLS_HOSTNAME)', async () => {
    const w = await startWorld({ cert: readFixture('wrong-host.pem'), key: readFixture('wrong-host-key.pem') });
    try {
      const r = await doctorJson([DEST, '--pomerium-url', w.proxy.url, '--alternate-ca-path', w.proxy.caPath], w.env, [w.token]);
      assert.equal(r.code, ExitCode.tls);
      assert.equal(r.step('tls').code, 'BURROW_TLS_HOSTNAME');
      assert.equal(r.step('tls').detail, text.tlsHostname(w.proxy.url, 'localhost', 'other.invalid'));
    } finally {
      await w.close();
    }
  });

  it('client certificate required: none is a TLS-step failure naming --client-cert; the right one passes and is named', async () => {
    const w = await startWorld({ requireClientCert: true });
    try {
      const base = [DEST, '--pomerium-url', w.proxy.url, '--alternate-ca-path', w.proxy.caPath];
      const none = await doctorJson(base, w.env, [w.token]);
      // Under TLS 1.3 the refusal comes after our side of the handshake: an alert (exit 8) or a
      // hang-up before the answer (exit 9), both at the TLS step, both naming --client-cert.
      assert.ok([ExitCode.tls, ExitCode.proxyProtocol].includes(none.code as 8 | 9), `exit ${none.code}`);
      assert.equal(none.step('tls').ok, false);
      assert.ok(!none.step('tls').skipped);
      assert.match(none.step('tls').hint ?? '', /--client-cert/);
      assert.ok(none.step('tunnel').skipped);
      const good = await doctorJson([...base, '--client-cert', fixture('client.pem'), '--client-key', fixture('client-key.pem')], w.env, [w.token]);
      assert.equal(good.code, ExitCode.ok, JSON.stringify(good.doc));
      assert.match(good.step('tls').detail, /client certificate .+ sent$/);
    } finally {
      await w.close();
    }
  });

  it('no cached sign-in: the sign-in step fails (exit 3) and the tunnel says to sign in; no browser opens', async () => {
    const u = user();
    const r = await doctorJson(args(), u.env);
    assert.equal(r.code, ExitCode.authRequired);
    assert.equal(r.step('sign-in').code, 'BURROW_NOT_SIGNED_IN');
    assert.equal(r.step('sign-in').detail, text.notSignedIn(origin()));
    assert.equal(r.step('tunnel').code, 'BURROW_AUTH_REQUIRED');
    assert.equal(r.step('tunnel').hint, text.notSignedInHint(origin()));
    assert.equal(r.step('tunnel').detail, text.authRequired(origin(), DEST, 302));
    assert.deepEqual(browserLaunches(u.log), [], 'no browser');
  });

  it('an expired cached token, and one the proxy refuses: the sign-in step fails (exit 3)', async () => {
    const expired = user();
    const old = world.proxy.mintToken({ ttlSeconds: -600 });
    cacheToken(expired.cache, origin(), old);
    const e = await doctorJson(args(), expired.env, [old]);
    assert.equal(e.code, ExitCode.authRequired);
    assert.equal(e.step('sign-in').code, 'BURROW_NOT_SIGNED_IN');
    assert.match(e.step('sign-in').detail, /expired 10 min ago/);

    const other = await startFakePomerium();
    try {
      const refused = user();
      const foreign = other.mintToken();
      cacheToken(refused.cache, origin(), foreign);
      const f = await doctorJson(args(), refused.env, [foreign]);
      assert.equal(f.code, ExitCode.authRequired);
      assert.equal(f.step('sign-in').code, 'BURROW_AUTH_REQUIRED');
      assert.equal(f.step('sign-in').detail, text.cachedSignInRejected(origin(), 401));
      assert.equal(f.step('tunnel').code, 'BURROW_AUTH_REQUIRED');
      assert.deepEqual(browserLaunches(refused.log), []);
      assert.deepEqual(storedTokens(refused.cache), [foreign], 'doctor forgets nothing');
    } finally {
      await other.close();
    }
  });

  it('403 policy, 404 no route, 503 upstream down: the tunnel step fails with the tcp error (exit 4, 5, 6)', async () => {
    for (const [dest, code, errorCode, detail] of [
      ['bob-only.corp.test:22', ExitCode.accessDenied, 'BURROW_ACCESS_DENIED', text.accessDenied(origin(), 'bob-only.corp.test:22', 'alice@corp.test')],
      ['nope.corp.test:22', ExitCode.routeNotFound, 'BURROW_ROUTE_NOT_FOUND', text.routeNotFound(origin(), 'nope.corp.test:22')],
      ['down.corp.test:22', ExitCode.upstreamUnavailable, 'BURROW_UPSTREAM_UNAVAILABLE', text.upstreamUnavailable(origin(), 'down.corp.test:22', 503)],
    ] as const) {
      const r = await doctorJson(args(dest), world.env, [world.token]);
      assert.equal(r.code, code, dest);
      assert.deepEqual(shape(r.doc), STEPS.map((s) => `${s}:${s === 'tunnel' ? 'FAILED' : 'ok'}`), dest);
      assert.equal(r.step('tunnel').code, errorCode);
      assert.equal(r.step('tunnel').detail, detail);
    }
  });

  it("clock skew: a proxy whose Date header is 5 minutes ahead fails the clock step (exit 15), the rest passes", async () => {
    const w = await startWorld({
      respond: (req) => (req.method === 'HEAD' ? { status: 404, headers: { Date: new Date(Date.now() + 300_000).toUTCString() } } : undefined),
    });
    try {
      const r = await doctorJson([DEST, '--pomerium-url', w.proxy.url, '--alternate-ca-path', w.proxy.caPath], w.env, [w.token]);
      assert.equal(r.code, ExitCode.clockSkew, JSON.stringify(r.doc));
      assert.deepEqual(shape(r.doc), STEPS.map((s) => `${s}:${s === 'clock' ? 'FAILED' : 'ok'}`));
      assert.equal(r.step('clock').code, 'BURROW_CLOCK_SKEW');
      assert.equal(r.step('clock').detail, text.clockSkewed(w.proxy.url, '5 min', 'behind'));
    } finally {
      await w.close();
    }
  });

  it('the credential store: files with the reason the keychain is not used; a keychain asked for that is not usable fails (exit 11)', async () => {
    // No D-Bus session in this environment: no keychain.
    const auto = await doctorJson(args(), { ...world.env, BURROW_CREDENTIAL_STORE: '' }, [world.token]);
    assert.equal(auto.code, ExitCode.ok, JSON.stringify(auto.doc));
    assert.match(auto.step('credential-store').detail, /^files under .+ \(the OS keychain is not usable: .+\)$/);
    const u = user();
    const keychain = await doctorJson(args(), { ...u.env, BURROW_CREDENTIAL_STORE: 'keychain' });
    assert.equal(keychain.code, ExitCode.credentialStore);
    assert.equal(keychain.step('credential-store').code, 'BURROW_CREDENTIAL_STORE');
    assert.ok(keychain.step('sign-in').skipped);
    assert.equal(keychain.step('sign-in').detail, text.doctorSkipped(text.doctorStep('credential-store')));
  });

  it('bad input is a usage error before any step (exit 2)', async () => {
    const r = await runBurrow(['doctor', 'no-port-here'], { env: world.env });
    assert.equal(r.code, ExitCode.usage);
    assert.match(r.stderr, /^burrow: error: invalid destination "no-port-here"/);
  });
});

describe('burrow doctor through a forward proxy (squid)', () => {
  let world: World;
  let squid: Squid;
  let denySquid: Squid;
  before(async () => {
    requireSquid();
    world = await startWorld();
    [squid, denySquid] = await Promise.all([startSquid(), startSquid({ denyConnectTo: [world.proxy.port] })]);
  });
  after(async () => {
    await stopAll();
    await stopAllSquid();
    await world?.close();
  });
  const args = (...extra: string[]) => [DEST, '--pomerium-url', world.proxy.url, '--alternate-ca-path', world.proxy.caPath, ...extra];

  it('a forward proxy that lets the tunnel through: named with its answer, every step passes', async () => {
    const r = await doctorJson(args(), { ...world.env, HTTPS_PROXY: squid.url }, [world.token]);
    assert.equal(r.code, ExitCode.ok, JSON.stringify(r.doc));
    assert.match(r.step('forward-proxy').detail, new RegExp(`^${squid.url.replace(/[.]/g, '\\.')} answered CONNECT localhost:${world.proxy.port} with HTTP 200`));
    assert.equal(r.step('tcp').detail, text.tcpThroughForward(squid.url));
    assert.equal(r.step('dns').detail, text.dnsForwardResolved('127.0.0.1', '127.0.0.1', 'localhost'));
  });

  it('a forward proxy refusing the CONNECT (403): the forward-proxy step fails (exit 12), TCP and what follows are skipped', async () => {
    const r = await doctorJson(args('--proxy', denySquid.url), world.env, [world.token]);
    assert.equal(r.code, ExitCode.forwardProxy);
    assert.equal(r.step('forward-proxy').code, 'BURROW_FORWARD_PROXY_DENIED');
    assert.equal(r.step('forward-proxy').detail, text.forwardDenied(denySquid.url, `localhost:${world.proxy.port}`));
    assert.deepEqual(shape(r.doc), ['dns:ok', 'forward-proxy:FAILED', 'tcp:skipped', 'tls:skipped', 'credential-store:ok', 'sign-in:skipped', 'tunnel:skipped', 'clock:skipped']);
    const direct = await doctorJson(args('--no-proxy'), { ...world.env, HTTPS_PROXY: denySquid.url }, [world.token]);
    assert.equal(direct.code, ExitCode.ok, '--no-proxy goes direct');
    assert.equal(direct.step('forward-proxy').detail, text.forwardNone);
  });
});
