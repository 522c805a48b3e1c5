import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTarget } from '../../src/cli/destination.js';
import { ExitCode } from '../../src/errors.js';
import { classifyNetworkError, dialSubject } from '../../src/net/dial.js';

const parsed = parseTarget('git.corp.test:22', 'https://proxy.test:8443');
const target = dialSubject(parsed.proxy, parsed.destination.authority);
const err = (code: string) => Object.assign(new Error(code), { code });

describe('classifyNetworkError', () => {
  // DNS failures are checked here rather than end to end: resolving a missing name would send a
  // query to this machine's resolver, and tests only ever talk to loopback.
  const table: Array<[string, 'connect' | 'tls' | 'answer', string, number, string]> = [
    ['ENOTFOUND', 'connect', 'BURROW_DNS', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): host "proxy.test" not found'],
    ['EAI_AGAIN', 'connect', 'BURROW_DNS', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): host "proxy.test" not found'],
    ['ECONNREFUSED', 'connect', 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): connection refused'],
    ['EMFILE', 'connect', 'BURROW_TOO_MANY_FILES', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): too many open files'],
    ['ENFILE', 'tls', 'BURROW_TOO_MANY_FILES', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): too many open files'],
    ['EHOSTUNREACH', 'connect', 'BURROW_PROXY_UNREACHABLE', ExitCode.proxyUnreachable, 'cannot connect to https://proxy.test:8443 (for git.corp.test:22): EHOSTUNREACH'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls', 'BURROW_TLS_UNTRUSTED', ExitCode.tls, 'TLS: the certificate of https://proxy.test:8443 is not trusted (SELF_SIGNED_CERT_IN_CHAIN)'],
    ['CERT_HAS_EXPIRED', 'tls', 'BURROW_TLS', ExitCode.tls, 'TLS: the certificate of https://proxy.test:8443 has expired or is not yet valid (CERT_HAS_EXPIRED)'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'answer', 'BURROW_TLS_CLIENT_CERT', ExitCode.tls, 'TLS: https://proxy.test:8443 refused the client certificate (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls', 'BURROW_TLS', ExitCode.tls, 'TLS handshake with https://proxy.test:8443 failed (ERR_SSL_WRONG_VERSION_NUMBER)'],
    ['ECONNRESET', 'tls', 'BURROW_TLS', ExitCode.tls, 'TLS handshake with https://proxy.test:8443 failed (ECONNRESET)'],
    ['ECONNRESET', 'answer', 'BURROW_PROXY_PROTOCOL', ExitCode.proxyProtocol, 'https://proxy.test:8443 closed the connection before answering the tunnel request for git.corp.test:22'],
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
