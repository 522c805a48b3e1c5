/**
 * What a user sees when something is wrong: one line on stderr naming the problem and the fix,
 * a documented exit code per class, no stack trace, no token. Real CLI, real TLS, local proxy.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { oneLineFailure } from '../helpers/assertions.js';
import { runBurrow, spawnBurrow, startListener, stopAll, tempDir } from '../helpers/burrow.js';
import { startTcpServer } from '../helpers/echo-server.js';
import { startRawAnswerServer, type RawAnswerOptions } from '../helpers/fake-pomerium/faults.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { errorWords, text } from '../../src/output/messages.js';
import { freePort } from '../helpers/processes.js';
import { DEST, eventually, startWorld, type World } from '../helpers/world.js';


describe('burrow tcp: errors', () => {
  let world: World;
  let closedPort: number;
  before(async () => {
    closedPort = await freePort();
    world = await startWorld({
      extraRoutes: [
        { from: 'tcp+https://bob-only.corp.test:22', to: 'tcp://127.0.0.1:1', allow: ['bob@corp.test'] },
        { from: 'tcp+https://down.corp.test:22', to: `tcp://127.0.0.1:${closedPort}` },
      ],
      respond: (req) => {
        if (req.method !== 'CONNECT') return undefined;
        if (req.url === 'method.corp.test:22') return { status: 405, body: 'no CONNECT here' };
        if (req.url === 'garbage.corp.test:22') return { raw: 'SSH-2.0-OpenSSH_9.2\r\n\r\n' };
        if (req.url === 'truncated.corp.test:22') return { raw: 'HTTP/1.1 2' };
        if (req.url === 'error500.corp.test:22') return { status: 500 };
        if (req.url === 'limited.corp.test:22') return { status: 429, headers: { 'Retry-After': '30' } };
        if (req.url === 'gateway.corp.test:22') return { status: 502, headers: { 'Retry-After': 'Wed, 21 Oct 2026 07:28:00 GMT' } };
        if (req.url === 'huge.corp.test:22') return { raw: `HTTP/1.1 200 OK\r\n${'X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(1700)}\r\n` };
        return undefined;
      },
    });
  });
  after(async () => {
    await stopAll();
    await world.close();
  });

  const stdio = (dest: string, extra: string[] = [], env: NodeJS.ProcessEnv = world.env) =>
    runBurrow(world.tcpArgs(dest, '--listen', '-', ...extra), { env, input: 'hello' });

  describe('proxy answers', () => {
    it('302 for a service account token the proxy does not accept: sign-in required (exit 3), no browser', async () => {
      const other = await startWorld();
      const foreign = other.token;
      await other.close();
      const r = await stdio(DEST, ['--browser-cmd', '/nonexistent/browser'], { BURROW_SERVICE_ACCOUNT: foreign });
      assert.equal(r.code, ExitCode.authRequired);
      const line = oneLineFailure(r.stderr, foreign);
      assert.ok(line.includes(`sign-in required by ${world.proxy.url} for ${DEST} (HTTP 302)`));
      assert.ok(line.includes('the service account token was refused'));
      assert.equal(r.stdout.length, 0, 'nothing on stdout');
      assert.equal(world.proxy.stats.loginRequests, 0, 'a service account never starts a browser sign-in');
    });

    it('401 from a proxy that answers so: sign-in required (exit 3)', async () => {
      const w = await startWorld({ unauthenticatedStatus: 401 });
      try {
        const r = await runBurrow(w.tcpArgs(DEST, '--listen', '-'), { env: { BURROW_SERVICE_ACCOUNT: world.token } });
        assert.equal(r.code, ExitCode.authRequired);
        assert.ok(oneLineFailure(r.stderr, world.token).includes('(HTTP 401)'));
      } finally {
        await w.close();
      }
    });

    it('an expired token is refused like none (exit 3) and never printed', async () => {
      const expired = world.proxy.mintToken({ ttlSeconds: -60 });
      const r = await stdio(DEST, [], { BURROW_SERVICE_ACCOUNT: expired });
      assert.equal(r.code, ExitCode.authRequired);
      oneLineFailure(r.stderr, expired);
    });

    it('403: access denied by policy (exit 4)', async () => {
      const r = await stdio('bob-only.corp.test:22');
      assert.equal(r.code, ExitCode.accessDenied);
      assert.ok(
        oneLineFailure(r.stderr, world.token).includes(`access denied by ${world.proxy.url} for bob-only.corp.test:22 (HTTP 403, signed in as alice@corp.test)`),
      );
    });

    it('404: no such route (exit 5)', async () => {
      const r = await stdio('nope.corp.test:22');
      assert.equal(r.code, ExitCode.routeNotFound);
      assert.ok(oneLineFailure(r.stderr).includes(`${world.proxy.url} has no route for nope.corp.test:22 (HTTP 404)`));
    });

    it('503: upstream unreachable (exit 6)', async () => {
      const r = await stdio('down.corp.test:22');
      assert.equal(r.code, ExitCode.upstreamUnavailable);
      assert.ok(oneLineFailure(r.stderr).includes(`${world.proxy.url} could not reach down.corp.test:22 (HTTP 503)`));
    });

    it('another status: named, with what came back (exit 9)', async () => {
      const r = await stdio('method.corp.test:22');
      assert.equal(r.code, ExitCode.proxyProtocol);
      assert.ok(oneLineFailure(r.stderr).includes('with HTTP 405 Method Not Allowed'));
    });

    it('malformed answers: not HTTP, cut off, oversized head (exit 9)', async () => {
      const garbage = await stdio('garbage.corp.test:22');
      assert.equal(garbage.code, ExitCode.proxyProtocol);
      assert.ok(oneLineFailure(garbage.stderr).includes('expected an HTTP/1.1 status line, got "SSH-2.0-OpenSSH_9.2"'));
      const cut = await stdio('truncated.corp.test:22');
      assert.equal(cut.code, ExitCode.proxyProtocol);
      assert.ok(oneLineFailure(cut.stderr).includes('the answer was cut off'));
      const huge = await stdio('huge.corp.test:22');
      assert.equal(huge.code, ExitCode.proxyProtocol);
      assert.ok(oneLineFailure(huge.stderr).includes('the answer head is larger than 64 KiB'));
    });

    it('a proxy that never answers: timeout (exit 7)', async () => {
      const w = await startWorld({ stallConnect: true });
      try {
        const r = await runBurrow(w.tcpArgs(DEST, '--listen', '-', '--connect-timeout', '0.5'), { env: w.env });
        assert.equal(r.code, ExitCode.proxyUnreachable);
        assert.ok(oneLineFailure(r.stderr).includes(`waiting for the answer to ${w.proxy.url} (for ${DEST}) timed out after 0.5s`));
      } finally {
        await w.close();
      }
    });

    it('nothing listening: connection refused (exit 7)', async () => {
      const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', `https://127.0.0.1:${closedPort}`], { env: world.env });
      assert.equal(r.code, ExitCode.proxyUnreachable);
      assert.ok(oneLineFailure(r.stderr).includes(`cannot connect to https://127.0.0.1:${closedPort} (for ${DEST}): connection refused`));
    });
  });

  describe('answers that are not a proxy\'s: named at once, not after --connect-timeout', () => {
    const proxyTls = { cert: readFixture('proxy.pem'), key: readFixture('proxy-key.pem') };
    /** burrow against a raw answer server standing in for the identity proxy (or the forward proxy). */
    async function against(options: RawAnswerOptions, hop: 'identity' | 'forward', input = '') {
      const server = await startRawAnswerServer(options);
      try {
        const args =
          hop === 'identity'
            ? ['tcp', DEST, '--listen', '-', '--pomerium-url', `https://127.0.0.1:${server.port}`, '--alternate-ca-path', fixture('ca.pem')]
            : [...world.tcpArgs(DEST, '--listen', '-'), '--proxy', `http://127.0.0.1:${server.port}`];
        const started = Date.now();
        const r = await runBurrow([...args, '--connect-timeout', '30'], { env: world.env, input, timeoutMs: 40_000 });
        return { ...r, ms: Date.now() - started, requests: server.requests, origin: `https://127.0.0.1:${server.port}` };
      } finally {
        await server.close();
      }
    }
    const quoted = (line: string) => /got "([^"]*)"/.exec(line)?.[1] ?? '';

    for (const [what, answer, got, lookalike] of [
      ['an SSH banner', 'SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n', 'SSH-2.0-OpenSSH_9.2p1 Debian-2', text.looksLikeSsh],
      ['an IMAP greeting', '* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n', '* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.', text.looksLikeImap],
      ['HTTP/2 in a status line', 'HTTP/2 200\r\n', 'HTTP/2 200', text.looksLikeNewerHttp],
    ] as const) {
      it(`${what}, then silence: exit 9 at once, naming what came back`, async () => {
        const r = await against({ answer, tls: proxyTls, then: 'hold' }, 'identity');
        assert.equal(r.code, ExitCode.proxyProtocol, r.stderr);
        const line = oneLineFailure(r.stderr, world.token);
        assert.ok(line.includes(text.malformedAnswer(r.origin, DEST, text.answerNotHttp(got, lookalike))), line);
        assert.ok(r.ms < 10_000, `took ${r.ms} ms with --connect-timeout 30`);
      });
    }

    it('random bytes, then silence: exit 9 at once, shown short and without control characters', async () => {
      const junk = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 73 + 11) % 256));
      const r = await against({ answer: junk, tls: proxyTls, then: 'hold' }, 'identity');
      assert.equal(r.code, ExitCode.proxyProtocol, r.stderr);
      const line = oneLineFailure(r.stderr, world.token);
      assert.ok(line.includes('expected an HTTP/1.1 status line'), line);
      assert.doesNotMatch(line, /[\x00-\x1f\x7f-\x9f]/, 'no control characters');
      assert.ok(quoted(line).length <= 61, `short: ${quoted(line).length} chars`);
      assert.ok(r.ms < 10_000, `took ${r.ms} ms with --connect-timeout 30`);
    });

    it('a status line that is complete but not HTTP/1.x NNN: exit 9 at once', async () => {
      const r = await against({ answer: 'HTTP/1.1 OK\r\n', tls: proxyTls, then: 'hold' }, 'identity');
      assert.equal(r.code, ExitCode.proxyProtocol, r.stderr);
      assert.ok(oneLineFailure(r.stderr).includes(text.answerNotHttp('HTTP/1.1 OK', undefined)));
      assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
    });

    it('a good answer sent byte by byte still opens the tunnel (identity proxy)', async () => {
      const r = await against({ answer: 'HTTP/1.1 200 Connection established\r\nX-Pad: a\r\n\r\n', tls: proxyTls, chunkBytes: 1, chunkIntervalMs: 3, then: 'echo' }, 'identity', 'byte by byte');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'byte by byte');
    });

    it('the forward proxy answering with an SSH banner: exit 12 at once, naming it', async () => {
      const r = await against({ answer: 'SSH-2.0-OpenSSH_9.2\r\n', tls: undefined, then: 'hold' }, 'forward');
      assert.equal(r.code, ExitCode.forwardProxy, r.stderr);
      const line = oneLineFailure(r.stderr, world.token);
      assert.ok(line.includes(`forward proxy http://127.0.0.1:`), line);
      assert.ok(line.includes(text.answerNotHttp('SSH-2.0-OpenSSH_9.2', text.looksLikeSsh)), line);
      assert.ok(r.ms < 10_000, `took ${r.ms} ms with --connect-timeout 30`);
    });

    it('the forward proxy answering byte by byte still carries the tunnel', async () => {
      const proxyPort = Number(new URL(world.proxy.url).port);
      const r = await against(
        { answer: 'HTTP/1.1 200 Connection established\r\n\r\n', tls: undefined, chunkBytes: 1, chunkIntervalMs: 3, then: { pipeTo: proxyPort } },
        'forward',
        'via forward',
      );
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'via forward');
    });
  });

  describe('server errors and rate limits: retry later', () => {
    it('500: a server error on the proxy\'s side (exit 9), not "not a tunnel endpoint"', async () => {
      const r = await stdio('error500.corp.test:22');
      assert.equal(r.code, ExitCode.proxyProtocol);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes(text.proxyServerError(world.proxy.url, 'error500.corp.test:22', 500)), line);
      assert.ok(line.endsWith(text.proxyServerErrorHint(undefined)), line);
      assert.ok(!line.includes(text.unexpectedStatusHint));
    });

    it('429 with Retry-After: rate-limited, says when to retry (exit 9)', async () => {
      const r = await stdio('limited.corp.test:22');
      assert.equal(r.code, ExitCode.proxyProtocol);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes(text.rateLimited(world.proxy.url, 'limited.corp.test:22')), line);
      assert.ok(line.endsWith(text.rateLimitedHint(text.retryInSeconds(30))), line);
    });

    it('502 with Retry-After: the upstream is down, retry in the time given (exit 6)', async () => {
      const r = await stdio('gateway.corp.test:22');
      assert.equal(r.code, ExitCode.upstreamUnavailable);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.endsWith(text.upstreamUnavailableHint(text.retryAfterDate('Wed, 21 Oct 2026 07:28:00 GMT'))), line);
    });
  });

  describe('TLS', () => {
    it('unknown CA: says so and names --alternate-ca-path (exit 8)', async () => {
      const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url], { env: world.env });
      assert.equal(r.code, ExitCode.tls);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes(`the certificate of ${world.proxy.url} is not trusted`));
      assert.ok(line.includes('--alternate-ca-path'));
    });

    it('a CA found only in the system bundle is trusted (loaded on demand, then the dial retried)', async () => {
      // SSL_CERT_FILE stands in for the system bundle, as in OpenSSL and curl.
      const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url], {
        env: { ...world.env, SSL_CERT_FILE: fixture('ca.pem') },
        input: 'system roots',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'system roots');
      assert.equal(r.stderr, '');
    });

    it('trust widens step by step: a wrong --alternate-ca-path, then Node\'s roots, then the system bundle', async () => {
      const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url, '--alternate-ca-path', fixture('other-ca.pem')], {
        env: { ...world.env, SSL_CERT_FILE: fixture('ca.pem') },
        input: 'third step',
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.toString(), 'third step');
    });

    it('hostname mismatch (exit 8); --disable-tls-verification connects anyway, with a warning', async () => {
      const w = await startWorld({ cert: readFixture('wrong-host.pem'), key: readFixture('wrong-host-key.pem') });
      try {
        const r = await runBurrow(w.tcpArgs(DEST, '--listen', '-'), { env: w.env });
        assert.equal(r.code, ExitCode.tls);
        const host = new URL(w.proxy.url).hostname;
        const line = oneLineFailure(r.stderr);
        assert.ok(line.includes(text.tlsHostname(w.proxy.url, host, 'other.invalid')), line);
        assert.ok(line.endsWith(text.tlsHostnameHint(host)), line);
        const insecure = await runBurrow(w.tcpArgs(DEST, '--listen', '-', '--disable-tls-verification'), { env: w.env, input: 'ok' });
        assert.equal(insecure.code, 0, insecure.stderr);
        assert.equal(insecure.stdout.toString(), 'ok');
        assert.match(insecure.stderr, /^burrow: warning: TLS verification is disabled/);
      } finally {
        await w.close();
      }
    });

    it('--ca-cert takes PEM text or base64 of it', async () => {
      const pem = readFixture('ca.pem');
      for (const value of [pem, Buffer.from(pem).toString('base64')]) {
        const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url, '--ca-cert', value], {
          env: world.env,
          input: 'ca',
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.toString(), 'ca');
      }
      const bad = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url, '--ca-cert', 'bm90IGEgY2VydA=='], { env: world.env });
      assert.equal(bad.code, ExitCode.usage);
      assert.ok(oneLineFailure(bad.stderr).includes('--ca-cert is neither a PEM certificate nor base64 of one'));
    });

    it('mutual TLS: no certificate or a foreign one is refused (exit 8), the right one works', async () => {
      const w = await startWorld({ requireClientCert: true });
      try {
        // Under TLS 1.3 the refusal comes after our handshake: as an alert (exit 8) or, when the
        // proxy's close wins the race, as a hang-up before any answer (exit 9). Both name the fix.
        const none = await runBurrow(w.tcpArgs(DEST, '--listen', '-'), { env: w.env });
        assert.ok([ExitCode.tls, ExitCode.proxyProtocol].includes(none.code as 8 | 9), `exit ${none.code}`);
        assert.ok(oneLineFailure(none.stderr).includes('--client-cert'));
        const rogue = await runBurrow(
          w.tcpArgs(DEST, '--listen', '-', '--client-cert', fixture('rogue-client.pem'), '--client-key', fixture('rogue-client-key.pem')),
          { env: w.env },
        );
        assert.ok([ExitCode.tls, ExitCode.proxyProtocol].includes(rogue.code as 8 | 9), `exit ${rogue.code}`);
        assert.ok(oneLineFailure(rogue.stderr).includes('--client-cert'));
        const good = await runBurrow(
          w.tcpArgs(DEST, '--listen', '-', '--client-cert', fixture('client.pem'), '--client-key', fixture('client-key.pem')),
          { env: w.env, input: 'mtls' },
        );
        assert.equal(good.code, 0, good.stderr);
        assert.equal(good.stdout.toString(), 'mtls');
      } finally {
        await w.close();
      }
    });

    it('bad certificate flags are usage errors (exit 2)', async () => {
      const onlyCert = await stdio(DEST, ['--client-cert', fixture('client.pem')]);
      assert.equal(onlyCert.code, ExitCode.usage);
      assert.ok(oneLineFailure(onlyCert.stderr).includes('--client-cert was given without --client-key'));
      const mismatched = await stdio(DEST, ['--client-cert', fixture('client.pem'), '--client-key', fixture('rogue-client-key.pem')]);
      assert.equal(mismatched.code, ExitCode.usage);
      assert.ok(oneLineFailure(mismatched.stderr).includes('the client certificate and key cannot be used'));
      const missing = await stdio(DEST, ['--alternate-ca-path', '/nonexistent/ca.pem']);
      assert.equal(missing.code, ExitCode.usage);
      assert.ok(oneLineFailure(missing.stderr).includes('cannot read CA file "/nonexistent/ca.pem": no such file'));
    });

    it('a CA file that is not a certificate is refused, naming the file and what it looks like (exit 2)', async () => {
      const dir = tempDir();
      const write = (name: string, content: string | Buffer) => {
        const path = join(dir, name);
        writeFileSync(path, content);
        return path;
      };
      const der = Buffer.from(readFixture('ca.pem').replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
      const cases: Array<[string, string]> = [
        [write('id_ed25519', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n-----END OPENSSH PRIVATE KEY-----\n'), text.looksLikeSshPrivateKey],
        [write('id_ed25519.pub', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvQ alice@laptop\n'), text.looksLikeSshPublicKey],
        [fixture('ca-key.pem'), text.looksLikePrivateKey],
        [write('ca.der', der), text.looksLikeDer],
        [write('notes.txt', 'ask Bob for the CA\n'), text.looksLikeText('ask Bob for the CA')],
        [write('empty.pem', ''), text.looksLikeEmpty],
      ];
      for (const [path, looksLike] of cases) {
        const r = await stdio(DEST, ['--alternate-ca-path', path]);
        assert.equal(r.code, ExitCode.usage, r.stderr);
        const line = oneLineFailure(r.stderr);
        assert.ok(line.includes(text.notACertificate(`CA file ${JSON.stringify(path)} (--alternate-ca-path)`, looksLike)), line);
        assert.ok(line.endsWith(text.notACertificateHint), line);
      }
      const directory = await stdio(DEST, ['--alternate-ca-path', dir]);
      assert.equal(directory.code, ExitCode.usage);
      assert.ok(oneLineFailure(directory.stderr).includes(text.fileUnreadable('CA file', dir, errorWords('EISDIR'))));
      assert.doesNotMatch(directory.stderr, /EISDIR/);
      const damaged = write('damaged.pem', '-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n');
      const broken = await stdio(DEST, ['--alternate-ca-path', damaged]);
      assert.equal(broken.code, ExitCode.usage);
      assert.ok(oneLineFailure(broken.stderr).includes(text.badCaFile(text.caFileSource(damaged), text.damagedCertificate)));
      const key = await stdio(DEST, ['--ca-cert', readFixture('ca-key.pem')]);
      assert.equal(key.code, ExitCode.usage);
      assert.ok(oneLineFailure(key.stderr).includes(text.notACertificate('--ca-cert', text.looksLikePrivateKey)));
      const sshKey = await stdio(DEST, ['--client-cert', fixture('client.pem'), '--client-key', cases[0]![0]]);
      assert.equal(sshKey.code, ExitCode.usage);
      assert.ok(oneLineFailure(sshKey.stderr).includes(text.clientKeyIsSsh(cases[0]![0])));
    });

    it('a CA was given but does not sign the proxy\'s certificate: a different hint from none given (exit 8)', async () => {
      // SSL_CERT_FILE stands in for the system bundle: one without the proxy's CA either.
      const env = { ...world.env, SSL_CERT_FILE: fixture('other-ca.pem') };
      const none = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url], { env });
      assert.equal(none.code, ExitCode.tls);
      assert.ok(oneLineFailure(none.stderr).endsWith(text.tlsUntrustedHint));
      const wrong = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url, '--alternate-ca-path', fixture('other-ca.pem')], { env });
      assert.equal(wrong.code, ExitCode.tls);
      const source = text.caFileSource(fixture('other-ca.pem'));
      const line = oneLineFailure(wrong.stderr);
      assert.ok(line.includes(text.tlsUntrustedWithCa(world.proxy.url, errorWords('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), source)), line);
      assert.ok(line.endsWith(text.tlsWrongCaHint(source)), line);
      const wrongInline = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', world.proxy.url, '--ca-cert', readFixture('other-ca.pem')], { env });
      assert.equal(wrongInline.code, ExitCode.tls);
      assert.ok(oneLineFailure(wrongInline.stderr).endsWith(text.tlsWrongCaHint('--ca-cert')));
    });

    it('a plain-http server where TLS was expected: words, not ERR_SSL_WRONG_VERSION_NUMBER (exit 8)', async () => {
      const plain = http.createServer((_req, res) => res.end('hello'));
      await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', () => resolve()));
      try {
        const origin = `https://127.0.0.1:${(plain.address() as net.AddressInfo).port}`;
        const r = await runBurrow(['tcp', DEST, '--listen', '-', '--pomerium-url', origin], { env: world.env });
        assert.equal(r.code, ExitCode.tls);
        const line = oneLineFailure(r.stderr);
        assert.ok(line.includes(text.tlsOther(origin, errorWords('ERR_SSL_WRONG_VERSION_NUMBER'))), line);
        assert.doesNotMatch(line, /ERR_SSL|error:[0-9A-F]{8}/);
      } finally {
        plain.closeAllConnections();
        await new Promise((resolve) => plain.close(resolve));
      }
    });
  });

  describe('service account tokens', () => {
    it('from --service-account, --service-account-file and BURROW_SERVICE_ACCOUNT', async () => {
      const file = join(tempDir(), 'token.jwt');
      writeFileSync(file, `${world.token}\n`);
      const viaFlag = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--service-account', world.token], { input: 'a' });
      assert.equal(viaFlag.stdout.toString(), 'a', viaFlag.stderr);
      const viaFile = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--service-account-file', file], { input: 'b' });
      assert.equal(viaFile.stdout.toString(), 'b', viaFile.stderr);
      const viaEnv = await runBurrow(world.tcpArgs(DEST, '--listen', '-'), { env: world.env, input: 'c' });
      assert.equal(viaEnv.stdout.toString(), 'c', viaEnv.stderr);
      assert.ok(world.proxy.events.filter((e) => e.email === 'alice@corp.test').length >= 3);
    });

    it('a token given with --service-account is wiped from the process list', async () => {
      const burrow = await startListener([...world.tcpArgs().slice(1), '--service-account', world.token]);
      const cmdline = readFileSync(`/proc/${burrow.child.pid}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes(world.token), 'no token in /proc/PID/cmdline');
      assert.match(cmdline, /^burrow/);
      await burrow.stop();
    });

    it('a missing or empty token source is a usage error (exit 2)', async () => {
      const missing = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--service-account-file', '/nonexistent/token']);
      assert.equal(missing.code, ExitCode.usage);
      assert.ok(oneLineFailure(missing.stderr).includes('cannot read service account file "/nonexistent/token": no such file'));
      const empty = await runBurrow(world.tcpArgs(DEST, '--listen', '-'), { env: { BURROW_SERVICE_ACCOUNT: '  ' } });
      assert.equal(empty.code, ExitCode.usage);
      assert.ok(oneLineFailure(empty.stderr).includes('the service account token from BURROW_SERVICE_ACCOUNT is empty'));
      const both = await runBurrow([...world.tcpArgs(DEST, '--listen', '-'), '--service-account', 'x', '--service-account-file', 'y']);
      assert.equal(both.code, ExitCode.usage);
      assert.ok(oneLineFailure(both.stderr).includes('--service-account and --service-account-file cannot be used together'));
    });
  });

  describe('command line', () => {
    it('bad flags and destinations: one line, exit 2', async () => {
      const unknown = await runBurrow(['tcp', DEST, '--no-such-flag']);
      assert.equal(unknown.code, ExitCode.usage);
      assert.equal(oneLineFailure(unknown.stderr), `burrow: error: ${text.unknownOption('--no-such-flag', 'burrow tcp')} — ${text.usageHint('burrow tcp --help')}`);
      const noPort = await runBurrow(['tcp', 'git.corp.test']);
      assert.equal(noPort.code, ExitCode.usage);
      assert.ok(oneLineFailure(noPort.stderr).includes('invalid destination "git.corp.test": the port is missing'));
      const missingArg = await runBurrow(['tcp']);
      assert.equal(missingArg.code, ExitCode.usage);
      assert.ok(oneLineFailure(missingArg.stderr).includes(text.missingArgument('burrow tcp', '<destination>')));
      const badTimeout = await runBurrow(['tcp', DEST, '--connect-timeout', 'soon']);
      assert.equal(badTimeout.code, ExitCode.usage);
      oneLineFailure(badTimeout.stderr);
    });

    it('--help has examples; version prints', async () => {
      const help = await runBurrow(['tcp', '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout.toString(), /ProxyCommand burrow tcp --listen - %h:%p/);
      const version = await runBurrow(['version']);
      assert.match(version.stdout.toString(), /^burrow \d+\.\d+\.\d+ \(node /);
    });

    it('a --listen address that is not this machine\'s: words, not EADDRNOTAVAIL (exit 2)', async () => {
      // 192.0.2.0/24 is reserved for documentation: no machine has it, and binding sends nothing.
      const r = await runBurrow([...world.tcpArgs(), '--listen', '192.0.2.1:0'], { env: world.env });
      assert.equal(r.code, ExitCode.usage);
      const line = oneLineFailure(r.stderr);
      assert.ok(line.includes(text.listenFailed('192.0.2.1:0', errorWords('EADDRNOTAVAIL'))), line);
      assert.ok(line.endsWith(text.listenNotLocalHint), line);
      assert.doesNotMatch(line, /EADDRNOTAVAIL/);
    });

    it('a busy --listen port is reported, not thrown (exit 2)', async () => {
      const busy = await startTcpServer(() => {});
      try {
        const r = await runBurrow([...world.tcpArgs(), '--listen', busy.address], { env: world.env });
        assert.equal(r.code, ExitCode.usage);
        assert.ok(oneLineFailure(r.stderr).includes(`cannot listen on ${busy.address}: address already in use`));
      } finally {
        await busy.close();
      }
    });
  });

  describe('lifecycle', () => {
    it('listener mode warns when bound beyond loopback', async () => {
      const burrow = await startListener([...world.tcpArgs().slice(1), '--listen', '0.0.0.0:0'], { env: world.env });
      await eventually(() => burrow.stderr().includes('warning:'), 5000, 'the warning');
      assert.match(burrow.stderr(), /warning: listening on 0\.0\.0\.0:\d+, which other machines can reach/);
      await burrow.stop();
    });

    it('SIGTERM closes the listener and every open tunnel, exit 0', async () => {
      const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
      const sockets = await Promise.all(
        [1, 2, 3].map(async () => {
          const socket = net.connect({ host: '127.0.0.1', port: burrow.port });
          socket.on('error', () => {});
          socket.write('ping');
          await new Promise((resolve) => socket.once('data', resolve));
          return socket;
        }),
      );
      await eventually(() => world.proxy.openTunnels >= 3, 5000, 'three open tunnels');
      const closed = Promise.all(sockets.map((s) => new Promise((resolve) => s.once('close', resolve))));
      assert.equal(await burrow.stop('SIGTERM'), 0);
      await closed;
      await eventually(() => world.proxy.openTunnels === 0, 5000, 'tunnels closed at the proxy');
      const refused = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: burrow.port });
        s.once('connect', () => resolve(false)).once('error', () => resolve(true));
      });
      assert.ok(refused, 'the listener is gone');
    });

    it('SIGTERM while a tunnel is still opening is a clean shutdown, not an error', async () => {
      const w = await startWorld({ stallConnect: true });
      try {
        const burrow = await startListener(w.tcpArgs().slice(1), { env: w.env });
        const socket = net.connect({ host: '127.0.0.1', port: burrow.port });
        socket.on('error', () => {});
        await eventually(() => w.proxy.stats.connects >= 1, 5000, 'the CONNECT to reach the proxy');
        assert.equal(await burrow.stop('SIGTERM'), 0);
        assert.doesNotMatch(burrow.stderr(), /error/);
        socket.destroy();
      } finally {
        await w.close();
      }
    });

    it('SIGINT (Ctrl-C) does the same', async () => {
      const burrow = await startListener(world.tcpArgs().slice(1), { env: world.env });
      assert.equal(await burrow.stop('SIGINT'), 0);
      assert.match(burrow.stderr(), /shutting down/);
    });

    it('stdio mode exits promptly when the proxy drops mid-stream: non-zero on a reset, data intact', async () => {
      for (const reset of [true, false]) {
        const drip = await startTcpServer((s) => {
          const timer = setInterval(() => s.write(Buffer.alloc(1024, 0x61)), 20);
          s.on('close', () => clearInterval(timer));
        });
        const w = await startWorld({ extraRoutes: [{ from: 'tcp+https://drip.corp.test:22', to: `tcp://${drip.address}` }] });
        try {
          const proc = spawnBurrow(w.tcpArgs('drip.corp.test:22', '--listen', '-'), { env: w.env, collectStdout: false });
          const chunks: Buffer[] = [];
          proc.child.stdout.on('data', (d: Buffer) => chunks.push(d));
          await eventually(() => chunks.length > 3, 10_000, 'data flowing');
          await w.proxy.close({ reset });
          const code = await Promise.race([proc.exited, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
          assert.notEqual(code, -1, 'exited within 10 s');
          const all = Buffer.concat(chunks);
          assert.ok(all.every((b) => b === 0x61), 'only bytes the server sent');
          if (reset) {
            assert.equal(code, ExitCode.tunnelBroken);
            assert.ok(oneLineFailure(proc.stderr(), w.token).includes('broke: connection reset'));
          } else {
            // A FIN from the proxy is indistinguishable from a clean close (see README).
            assert.equal(code, 0, proc.stderr());
          }
        } finally {
          await w.close();
          await drip.close();
        }
      }
    });
  });
});
