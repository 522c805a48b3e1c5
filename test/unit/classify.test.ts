import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTarget } from '../../src/cli/destination.js';
import { ExitCode } from '../../src/errors.js';
import { classifyNetworkError, dialSubject } from '../../src/net/dial.js';
import { text } from '../../src/output/messages.js';

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
    ['EHOSTUNREACH', 'connect', 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, text.unreachable(P, D, 'EHOSTUNREACH')],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls', 'BURROW_TLS_UNTRUSTED', ExitCode.tls, text.tlsUntrusted(P, 'SELF_SIGNED_CERT_IN_CHAIN')],
    ['CERT_HAS_EXPIRED', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsExpired(P, 'CERT_HAS_EXPIRED')],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'answer', 'BURROW_TLS_CLIENT_CERT', ExitCode.tls, text.tlsClientCert(P, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsOther(P, 'ERR_SSL_WRONG_VERSION_NUMBER')],
    ['ECONNRESET', 'tls', 'BURROW_TLS', ExitCode.tls, text.tlsOther(P, 'ECONNRESET')],
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
  it('getaddrinfo EBUSY (glibc out of descriptors) is too many open files; other EBUSY is not', () => {
    assert.equal(classifyNetworkError(Object.assign(err('EBUSY'), { syscall: 'getaddrinfo' }), target, 'connect').code, 'BURROW_TOO_MANY_FILES');
    assert.equal(classifyNetworkError(err('EBUSY'), target, 'connect').code, 'BURROW_PROXY_UNREACHABLE');
  });
});
