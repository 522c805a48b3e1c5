import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyUrl } from '../../src/cli/destination.js';
import { BurrowError } from '../../src/errors.js';
import { bypassesProxy, forwardProxyFor, parseForwardProxy } from '../../src/net/proxy-env.js';
import { text } from '../../src/output/messages.js';

const idp = parseProxyUrl('https://pomerium.corp.example.com', 'x');

describe('parseForwardProxy', () => {
  it('reads scheme, host, port and percent-decoded Basic credentials', () => {
    const p = parseForwardProxy('http://alice:p%40ss%3Aw0rd@squid.corp:3128', 'HTTPS_PROXY');
    assert.equal(p.origin, 'http://squid.corp:3128');
    assert.equal(p.authorization, `Basic ${Buffer.from('alice:p@ss:w0rd').toString('base64')}`);
    assert.equal(parseForwardProxy('https://squid.corp', 'x').port, 443);
    assert.equal(parseForwardProxy('squid.corp:8080', 'x').origin, 'http://squid.corp:8080', 'curl assumes http://');
    assert.equal(parseForwardProxy('http://[::1]:3128', 'x').origin, 'http://[::1]:3128');
  });
  it('rejects what it cannot use, without echoing a password', () => {
    for (const [value, reason] of [
      ['socks5://u:secret@h:1080', 'the scheme "socks5://" is not supported (use http:// or https://)'],
      ['http://u:%zz@h:1', 'its user name or password is not valid percent-encoding'],
      ['http://h:99999', 'it is not a valid URL'],
    ] as const) {
      assert.throws(
        () => parseForwardProxy(value, 'ALL_PROXY'),
        (e: unknown) =>
          e instanceof BurrowError &&
          e.code === 'BURROW_INVALID_URL' &&
          e.exitCode === 2 &&
          e.message === text.invalidForwardProxy('ALL_PROXY', reason) &&
          !e.message.includes('secret'),
      );
    }
  });
});

describe('bypassesProxy (NO_PROXY, as curl)', () => {
  const cases: Array<[string, string, number, boolean]> = [
    ['*', 'anything.example', 443, true],
    ['corp.example.com', 'pomerium.corp.example.com', 443, true],
    ['.corp.example.com', 'pomerium.corp.example.com', 443, true],
    ['*.corp.example.com', 'pomerium.corp.example.com', 443, true],
    ['corp.example.com', 'corp.example.com', 443, true],
    ['corp.example.com', 'notcorp.example.com', 443, false],
    ['example.org, corp.example.com', 'a.corp.example.com', 443, true],
    ['corp.example.com:8443', 'a.corp.example.com', 443, false],
    ['corp.example.com:8443', 'a.corp.example.com', 8443, true],
    ['127.0.0.1', '127.0.0.1', 443, true],
    ['127.0.0.0/8', '127.0.0.1', 443, true],
    ['10.0.0.0/8', '127.0.0.1', 443, false],
    ['127.0.0.0/8', 'localhost', 443, false],
    ['::1', '::1', 443, true],
    ['[::1]:9443', '::1', 9443, true],
    ['fd00::/8', 'fd12::5', 443, true],
    ['localhost', 'LOCALHOST', 443, true],
    ['', 'a.example', 443, false],
  ];
  for (const [list, host, port, expected] of cases) {
    it(`${JSON.stringify(list)} ${host}:${port} -> ${expected ? 'direct' : 'proxied'}`, () => assert.equal(bypassesProxy(list, host, port), expected));
  }
});

describe('forwardProxyFor', () => {
  it('flags win over the environment', () => {
    const env = { HTTPS_PROXY: 'http://env:3128' };
    assert.equal(forwardProxyFor(idp, { proxy: 'http://flag:1' }, env)?.origin, 'http://flag:1');
    assert.equal(forwardProxyFor(idp, { proxy: false }, env), undefined);
  });
  it('reads https_proxy before HTTPS_PROXY before ALL_PROXY; NO_PROXY bypasses', () => {
    assert.equal(forwardProxyFor(idp, {}, { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' })?.origin, 'http://lower:1');
    assert.equal(forwardProxyFor(idp, {}, { HTTPS_PROXY: 'http://upper:1', ALL_PROXY: 'http://all:1' })?.origin, 'http://upper:1');
    assert.equal(forwardProxyFor(idp, {}, { ALL_PROXY: 'http://all:1' })?.origin, 'http://all:1');
    assert.equal(forwardProxyFor(idp, {}, { HTTP_PROXY: 'http://plain:1' }), undefined, 'HTTP_PROXY is for http targets');
    assert.equal(forwardProxyFor(parseProxyUrl('http://p.test', 'x'), {}, { HTTP_PROXY: 'http://plain:1' })?.origin, 'http://plain:1');
    assert.equal(forwardProxyFor(idp, {}, { HTTPS_PROXY: 'http://upper:1', NO_PROXY: '.example.com' }), undefined);
    assert.equal(forwardProxyFor(idp, {}, { HTTPS_PROXY: 'http://upper:1', NO_PROXY: 'other.org' })?.origin, 'http://upper:1');
    assert.equal(forwardProxyFor(idp, {}, {}), undefined);
    assert.equal(forwardProxyFor(idp, {}, { HTTPS_PROXY: '  ' }), undefined, 'blank means unset');
  });
});
