import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTarget } from '../../src/cli/destination.js';
import { ExitCode } from '../../src/errors.js';
import { judgeAnswerStart, parseAnswerHead } from '../../src/net/http-answer.js';
import { text } from '../../src/output/messages.js';
import { connectRequest } from '../../src/tunnel/connect.js';
import { retryAfter, statusToError } from '../../src/tunnel/status.js';

const P = 'https://proxy.test:8443';
const D = 'git.corp.test:22';
const target = parseTarget(D, P);
const subject = { proxy: target.proxy.origin, dest: target.destination.authority };

describe('statusToError: one mapping from the proxy answer to an error', () => {
  const table: Array<[number, string | undefined, number | undefined, string | undefined]> = [
    [200, undefined, undefined, undefined],
    [301, 'BURROW_AUTH_REQUIRED', ExitCode.authRequired, text.authRequired(P, D, 301)],
    [302, 'BURROW_AUTH_REQUIRED', ExitCode.authRequired, text.authRequired(P, D, 302)],
    [307, 'BURROW_AUTH_REQUIRED', ExitCode.authRequired, undefined],
    [308, 'BURROW_AUTH_REQUIRED', ExitCode.authRequired, undefined],
    [401, 'BURROW_AUTH_REQUIRED', ExitCode.authRequired, text.authRequired(P, D, 401)],
    [403, 'BURROW_ACCESS_DENIED', ExitCode.accessDenied, text.accessDenied(P, D, undefined)],
    [404, 'BURROW_ROUTE_NOT_FOUND', ExitCode.routeNotFound, text.routeNotFound(P, D)],
    [502, 'BURROW_UPSTREAM_UNAVAILABLE', ExitCode.upstreamUnavailable, undefined],
    [503, 'BURROW_UPSTREAM_UNAVAILABLE', ExitCode.upstreamUnavailable, text.upstreamUnavailable(P, D, 503)],
    [504, 'BURROW_UPSTREAM_UNAVAILABLE', ExitCode.upstreamUnavailable, undefined],
    [405, 'BURROW_PROXY_STATUS', ExitCode.proxyProtocol, text.unexpectedStatus(P, D, 405, 'Method Not Allowed')],
    [500, 'BURROW_PROXY_STATUS', ExitCode.proxyProtocol, text.proxyServerError(P, D, 500)],
    [429, 'BURROW_PROXY_STATUS', ExitCode.proxyProtocol, text.rateLimited(P, D)],
  ];
  for (const [status, code, exitCode, message] of table) {
    it(`${status} -> ${code ?? 'success'}`, () => {
      const reason = status === 405 ? 'Method Not Allowed' : 'X';
      const error = statusToError({ status, reason, headers: { location: 'https://auth.test/' } }, subject);
      assert.equal(error?.code, code);
      assert.equal(error?.exitCode, exitCode);
      if (message) assert.equal(error?.message, message);
      if (error) assert.ok(error.hint, 'every error has a hint');
    });
  }
  it('names the signed-in user in a denial, and how to switch', () => {
    const error = statusToError({ status: 403, reason: 'Forbidden', headers: {} }, subject, { user: 'alice@corp.test' });
    assert.equal(error?.code, 'BURROW_ACCESS_DENIED');
    assert.equal(error?.exitCode, ExitCode.accessDenied);
    assert.equal(error?.message, text.accessDenied(P, D, 'alice@corp.test'));
    assert.equal(error?.hint, text.accessDeniedHint(P, 'alice@corp.test'));
    assert.match(error?.hint ?? '', /burrow logout --browser https:\/\/proxy\.test:8443"/);
    // A real Pomerium keeps its own browser session: the hint names the page that ends it.
    assert.match(error?.hint ?? '', /https:\/\/proxy\.test:8443\/\.pomerium\/sign_out/);
  });
  it("takes the transport's advice for a status with no meaning of its own", () => {
    const error = statusToError({ status: 405, reason: 'Method Not Allowed', headers: {} }, subject, { unexpectedHint: (status) => `hint for ${status}` });
    assert.equal(error?.hint, 'hint for 405');
    assert.equal(statusToError({ status: 403, reason: 'Forbidden', headers: {} }, subject, { unexpectedHint: () => 'x' })?.code, 'BURROW_ACCESS_DENIED');
  });
  it('keeps the sign-in location of a redirect', () => {
    const error = statusToError({ status: 302, reason: 'Found', headers: { location: 'https://auth.test/x' } }, subject);
    assert.equal((error as { location?: string }).location, 'https://auth.test/x');
  });
  it('server errors and rate limits say to retry later, with the Retry-After given', () => {
    const at = (status: number, retry?: string) => statusToError({ status, reason: 'X', headers: retry ? { 'retry-after': retry } : {} }, subject)?.hint;
    assert.equal(at(500), text.proxyServerErrorHint(undefined));
    assert.equal(at(429, '120'), text.rateLimitedHint(text.retryInSeconds(120)));
    assert.equal(at(503, 'Wed, 21 Oct 2026 07:28:00 GMT'), text.upstreamUnavailableHint(text.retryAfterDate('Wed, 21 Oct 2026 07:28:00 GMT')));
    assert.equal(at(429, '\x1b[31mnonsense'), text.rateLimitedHint(undefined), 'an unreadable Retry-After is left out');
    assert.equal(retryAfter({ status: 429, reason: '', headers: { 'retry-after': '99999999999' } }), undefined);
  });
  it('makes a hostile reason phrase printable and short', () => {
    const error = statusToError({ status: 499, reason: `\x1b[31m${'A'.repeat(100)}`, headers: {} }, subject);
    assert.ok(error);
    assert.doesNotMatch(error.message, /\x1b/);
    assert.ok(error.message.length < 200);
  });
});

describe('parseAnswerHead', () => {
  it('parses a status line and headers', () => {
    assert.deepEqual(parseAnswerHead('HTTP/1.1 302 Found\r\nLocation: https://x/\r\nContent-Length: 0'), {
      answer: { status: 302, reason: 'Found', headers: { location: 'https://x/', 'content-length': '0' } },
    });
    assert.deepEqual(parseAnswerHead('HTTP/1.0 200'), { answer: { status: 200, reason: '', headers: {} } });
  });
  it('rejects what is not HTTP/1.x', () => {
    assert.deepEqual(parseAnswerHead('SSH-2.0-OpenSSH_9.2'), { malformed: text.answerNotHttp('SSH-2.0-OpenSSH_9.2', text.looksLikeSsh) });
    assert.deepEqual(parseAnswerHead('HTTP/1.1 20'), { malformed: text.answerNotHttp('HTTP/1.1 20', undefined) });
    assert.deepEqual(parseAnswerHead('HTTP/2 200'), { malformed: text.answerNotHttp('HTTP/2 200', text.looksLikeNewerHttp) });
    assert.deepEqual(parseAnswerHead('HTTP/1.1 200 OK\r\nno colon here'), { malformed: 'bad header line "no colon here"' });
  });
});

describe('judgeAnswerStart: a status line is judged as its bytes arrive', () => {
  const good = 'HTTP/1.1 200 Connection established\r\nServer: x\r\n\r\n';
  it('every prefix of a good head, cut anywhere, may still be one', () => {
    for (let i = 0; i <= good.length - 4; i++) assert.equal(judgeAnswerStart(Buffer.from(good.slice(0, i))), undefined, `prefix of ${i} bytes`);
    assert.equal(judgeAnswerStart(Buffer.from('HTTP/1.0 407')), undefined);
    assert.equal(judgeAnswerStart(Buffer.from('HTTP/1.1 204\r\n')), undefined);
  });
  it('fails on the first byte that cannot start a status line', () => {
    assert.equal(judgeAnswerStart(Buffer.from('S')), text.answerNotHttp('S', undefined));
    assert.equal(judgeAnswerStart(Buffer.from('SSH-2.0-OpenSSH_9.2')), text.answerNotHttp('SSH-2.0-OpenSSH_9.2', text.looksLikeSsh));
    assert.equal(judgeAnswerStart(Buffer.from('* OK ready')), text.answerNotHttp('* OK ready', text.looksLikeImap));
    assert.equal(judgeAnswerStart(Buffer.from([0x16, 0x03, 0x03, 0x00])), text.answerNotHttp('????', text.looksLikeTls));
    assert.ok(judgeAnswerStart(Buffer.from('HTTP/1.2 200 OK')));
    assert.ok(judgeAnswerStart(Buffer.from('HTTP/1.1 2x')));
    assert.ok(judgeAnswerStart(Buffer.from('HTTP/1.1 2000')));
  });
  it('fails once the first line is complete and not a status line', () => {
    assert.equal(judgeAnswerStart(Buffer.from('HTTP/1.1 200 OK\n')), text.answerBareLf('HTTP/1.1 200 OK'));
    assert.equal(judgeAnswerStart(Buffer.from('HTTP/1.1 200 OK\r\nServer: x')), undefined);
  });
  it('what it shows is printable and short', () => {
    const shown = judgeAnswerStart(Buffer.concat([Buffer.from('\x1b[2J'), Buffer.alloc(500, 0x41)])) ?? '';
    assert.doesNotMatch(shown, /[\x00-\x1f\x7f-\xff]/);
    assert.ok((/"([^"]*)"/.exec(shown)?.[1] ?? '').length <= 61);
  });
});

describe('connectRequest', () => {
  const route = { tls: undefined, connectTimeoutMs: 1000, userAgent: 'burrow/1' };
  it('asks for the authority, with the token only when there is one', () => {
    assert.equal(connectRequest(target, undefined, route), 'CONNECT git.corp.test:22 HTTP/1.1\r\nHost: git.corp.test:22\r\nUser-Agent: burrow/1\r\n\r\n');
    assert.match(connectRequest(target, 'eyJabc.def.ghi', route), /\r\nAuthorization: Pomerium eyJabc\.def\.ghi\r\n\r\n$/);
  });
});
