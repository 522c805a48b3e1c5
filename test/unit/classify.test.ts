import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTarget } from '../../src/cli/destination.js';
import { ExitCode } from '../../src/errors.js';
import { classifyNetworkError, dialSubject } from '../../src/net/dial.js';
import { errorWords, text } from '../../src/output/messages.js';

const P = 'https://proxy.test:8443';
const D = 'git.corp.test:22';
const parsed = parseTarget(D, P);
const target = dialSubject(parsed.proxy, parsed.destination.authority);
const err = (code: string) => Object.assign(new Error(code), { code });

describe('classifyNetworkError', () => {
  // DNS failures are checked here rather than end to end: resolving a missing name would send a
  // query to this machine's resolver, and tests only ever talk to loopback.
  const table: Array<[string, 'connect' | 'tls' | 'answer', string, number, string]> = [
    ['ENOTFOUND', 'connect', 'BURROW_DNS', ExitCode.proxyUnreachable, text.dnsFailed(P, D, 'proxy.test')],
    ['EAI_AGAIN', 'connect', 'BURROW_DNS', ExitCode.proxyUnreachable, text.dnsFailed(P, D, 'proxy.test')],
    ['ECONNREFUSED', 'connect', 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, text.refused(P, D)],
    ['EMFILE', 'connect', 'BURROW_TOO_MANY_FILES', ExitCode.proxyUnreachable, text.tooManyFiles(P, D)],
    ['ENFILE', 'tls', 'BURROW_TOO_MANY_FILES', ExitCode.proxyUnreachable, text.tooManyFiles(P, D)],
    ['EHOSTUNREACH', 'connect', 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, text.unreachable(P, D, errorWords('EHOSTUNREACH'))],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls', 'BURROW_TLS_UNTRUSTED', ExitCode.tls, text.tlsUntrusted(P, errorWords('SELF_SIGNED_CERT_IN_CHAIN'))],
    ['CERT_HAS_EXPIRED', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsExpired(P, errorWords('CERT_HAS_EXPIRED'))],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'answer', 'BURROW_TLS_CLIENT_CERT', ExitCode.tls, text.tlsClientCert(P, errorWords('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'))],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsOther(P, errorWords('ERR_SSL_WRONG_VERSION_NUMBER'))],
    ['ECONNRESET', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsOther(P, errorWords('ECONNRESET'))],
    ['ECONNRESET', 'answer', 'BURROW_PROXY_PROTOCOL', ExitCode.proxyProtocol, text.closedBeforeAnswer(P, D)],
  ];
  for (const [code, phase, expected, exitCode, message] of table) {
    it(`${code} while ${phase}`, () => {
      const error = classifyNetworkError(err(code), target, phase);
      assert.equal(error.code, expected);
      assert.equal(error.exitCode, exitCode);
      assert.equal(error.message, message);
      assert.ok(error.hint);
      assert.equal((error.cause as Error).message, code, 'keeps the cause');
    });
  }
  it('shows words, not raw system or OpenSSL codes', () => {
    for (const [code, phase] of [
      ['EADDRNOTAVAIL', 'connect'], ['ENETUNREACH', 'connect'], ['EHOSTUNREACH', 'connect'], ['ETIMEDOUT', 'connect'],
      ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls'], ['ERR_SSL_PACKET_LENGTH_TOO_LONG', 'tls'], ['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'tls'],
      ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'], ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'], ['CERT_NOT_YET_VALID', 'tls'],
      ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'answer'], ['ECONNRESET', 'tls'],
    ] as const) {
      const error = classifyNetworkError(err(code), target, phase);
      assert.ok(!error.message.includes(code), `${code}: ${error.message}`);
    }
    // A code without words is still shown, so nothing is lost.
    assert.equal(classifyNetworkError(err('EWHATEVER'), target, 'connect').message, text.unreachable(P, D, 'EWHATEVER'));
    // OpenSSL's reason strings, by their text.
    assert.equal(errorWords('', 'error:1E08010C:DECODER routines::unsupported'), 'its contents are not a certificate or key OpenSSL can read');
  });
  it('a hostname mismatch names the names the certificate is for', () => {
    const mismatch = Object.assign(err('ERR_TLS_CERT_ALTNAME_INVALID'), {
      host: 'proxy.test',
      reason: "Host: proxy.test. is not in the cert's altnames: DNS:other.invalid",
      cert: { subjectaltname: 'DNS:other.invalid, DNS:*.other.invalid, IP Address:10.0.0.1', subject: { CN: 'x' } },
    });
    const error = classifyNetworkError(mismatch, target, 'tls');
    assert.equal(error.code, 'BURROW_TLS_HOSTNAME');
    assert.equal(error.message, text.tlsHostname(P, 'proxy.test', 'other.invalid, *.other.invalid, 10.0.0.1'));
    assert.equal(error.hint, text.tlsHostnameHint('proxy.test'));
    const cnOnly = Object.assign(err('ERR_TLS_CERT_ALTNAME_INVALID'), { host: 'proxy.test', cert: { subject: { CN: 'legacy.test' } } });
    assert.equal(classifyNetworkError(cnOnly, target, 'tls').message, text.tlsHostname(P, 'proxy.test', 'legacy.test'));
  });
  it('getaddrinfo EBUSY (glibc out of descriptors) is too many open files; other EBUSY is not', () => {
    assert.equal(classifyNetworkError(Object.assign(err('EBUSY'), { syscall: 'getaddrinfo' }), target, 'connect').code, 'BURROW_TOO_MANY_FILES');
    assert.equal(classifyNetworkError(err('EBUSY'), target, 'connect').code, 'BURROW_PROXY_UNREACHABLE');
  });
});
