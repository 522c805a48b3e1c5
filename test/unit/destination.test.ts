import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyUrl, parseTarget } from '../../src/cli/destination.js';
import { parseListen } from '../../src/cli/listen-address.js';
import { BurrowError, ExitCode } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';

function fails(fn: () => unknown, code: string, message: string) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof BurrowError, 'a BurrowError');
    assert.equal(error.code, code);
    assert.equal(error.exitCode, ExitCode.usage);
    assert.equal(error.message, message);
    assert.ok(error.hint && error.hint.length > 0, 'has a hint');
    return true;
  });
}

describe('parseTarget: the destination forms', () => {
  const cases: Array<[string, string | undefined, string, string]> = [
    ['git.corp.example.com:22', undefined, 'git.corp.example.com:22', 'https://git.corp.example.com:443'],
    ['tcp+https://git.corp.example.com:22', undefined, 'git.corp.example.com:22', 'https://git.corp.example.com:443'],
    ['tcp+https://proxy.corp.example.com/db.internal:5432', undefined, 'db.internal:5432', 'https://proxy.corp.example.com:443'],
    ['tcp+https://proxy.corp.example.com:8443/db.internal:5432', undefined, 'db.internal:5432', 'https://proxy.corp.example.com:8443'],
    ['tcp+https://proxy.corp.example.com:8443/db.internal:5432/', undefined, 'db.internal:5432', 'https://proxy.corp.example.com:8443'],
    ['tcp+http://localhost:8080/redis:6379', undefined, 'redis:6379', 'http://localhost:8080'],
    ['[::1]:22', undefined, '[::1]:22', 'https://[::1]:443'],
    ['10.0.0.5:22', 'https://localhost:8443', '10.0.0.5:22', 'https://localhost:8443'],
    ['Git.Corp.Example.COM:22', undefined, 'git.corp.example.com:22', 'https://git.corp.example.com:443'],
    // An IPv6 zone names an interface: its case is kept, the address's is not. (URLs have no zones.)
    ['[FE80::1%Eth0]:22', 'https://[FE80::A]:9443', '[fe80::1%Eth0]:22', 'https://[fe80::a]:9443'],
    ['git.corp.test:22', 'https://127.0.0.1:9443/', 'git.corp.test:22', 'https://127.0.0.1:9443'],
    ['git.corp.test:22', 'https://[::1]:9443', 'git.corp.test:22', 'https://[::1]:9443'],
    ['TCP+HTTPS://git.corp.test:22', undefined, 'git.corp.test:22', 'https://git.corp.test:443'],
  ];
  for (const [input, pomeriumUrl, authority, origin] of cases) {
    it(`${input}${pomeriumUrl ? ` with --pomerium-url ${pomeriumUrl}` : ''}`, () => {
      const target = parseTarget(input, pomeriumUrl);
      assert.equal(target.destination.authority, authority);
      assert.equal(target.proxy.origin, origin);
    });
  }

  it('splits host and port', () => {
    const t = parseTarget('tcp+https://proxy.test:8443/[::1]:2222');
    assert.deepEqual(t.destination, { host: '::1', port: 2222, authority: '[::1]:2222' });
    assert.deepEqual(t.proxy, { scheme: 'https', host: 'proxy.test', port: 8443, origin: 'https://proxy.test:8443' });
  });
});

describe('parseTarget: bad destinations get exact messages', () => {
  const D = 'BURROW_INVALID_DESTINATION';
  const cases: Array<[string, string]> = [
    ['git.corp.example.com', 'the port is missing (add ":PORT", for example ":22")'],
    ['git.corp.example.com:', 'the port is missing (add ":PORT", for example ":22")'],
    ['git.corp.example.com:0', 'the port "0" is not a number from 1 to 65535'],
    ['git.corp.example.com:65536', 'the port "65536" is not a number from 1 to 65535'],
    ['git.corp.example.com:ssh', 'the port "ssh" is not a number from 1 to 65535'],
    [':22', 'the host is empty'],
    ['', 'it is empty'],
    ['bad_host!:22', '"bad_host!" is not a valid host name'],
    ['999.1.1.1:22', '"999.1.1.1" is not a valid IPv4 address'],
    ['::1:22', 'an IPv6 address must be written in brackets, for example [::1]:22'],
    ['[::1:22', 'the IPv6 address has no closing "]"'],
    ['[::1]', 'the port is missing (add ":PORT", for example ":22")'],
    ['https://git.corp.example.com:22', 'the scheme "https://" is not supported'],
    ['ssh://git.corp.example.com:22', 'the scheme "ssh://" is not supported'],
    ['tcp+https://', 'the host is empty'],
    ['tcp+https://git.corp.example.com', 'the port is missing (add ":PORT", for example ":22")'],
    ['tcp+https://proxy/a/b:22', 'the path must be a single "host:port"'],
    ['tcp+https://proxy:99999/db:22', 'proxy: the port "99999" is not a number from 1 to 65535'],
    ['tcp+https://user@proxy/db:22', 'user names, queries and fragments are not allowed'],
    ['tcp+https://proxy/db', 'the port is missing (add ":PORT", for example ":22")'],
  ];
  for (const [input, reason] of cases) {
    it(JSON.stringify(input), () => fails(() => parseTarget(input), D, text.invalidDestination(input, reason)));
  }
});

describe('parseTarget: WebSocket destinations', () => {
  it('wss:// names its gateway and keeps path and query', () => {
    const t = parseTarget('wss://gw.corp.test/ssh?x=1');
    assert.deepEqual(t.websocket, { url: 'wss://gw.corp.test:443/ssh?x=1' });
    assert.equal(t.proxy.origin, 'https://gw.corp.test:443');
    assert.equal(t.destination.authority, 'wss://gw.corp.test:443/ssh?x=1');
    assert.equal(parseTarget('ws://127.0.0.1:8080/').proxy.origin, 'http://127.0.0.1:8080');
    assert.equal(parseTarget('wss://[::1]:9443/a').websocket?.url, 'wss://[::1]:9443/a');
  });
  it('rejects credentials, fragments, bad hosts and --pomerium-url', () => {
    fails(() => parseTarget('wss://u:p@gw.test/'), 'BURROW_INVALID_DESTINATION', text.invalidDestination('wss://u:p@gw.test/', 'user names are not allowed'));
    fails(() => parseTarget('wss://gw.test/#x'), 'BURROW_INVALID_DESTINATION', text.invalidDestination('wss://gw.test/#x', 'fragments are not allowed'));
    fails(() => parseTarget('wss://bad_host!/'), 'BURROW_INVALID_DESTINATION', text.invalidDestination('wss://bad_host!/', '"bad_host!" is not a valid host name'));
    fails(() => parseTarget('wss://gw.test/', 'https://p.test'), 'BURROW_USAGE', text.conflictingFlags('a wss:// destination', '--pomerium-url'));
  });
});

describe('--pomerium-url', () => {
  const U = 'BURROW_INVALID_URL';
  const cases: Array<[string, string]> = [
    ['proxy.corp.example.com', 'it has no scheme (start it with https://)'],
    ['ftp://proxy.corp.example.com', 'the scheme "ftp://" is not supported'],
    ['https://proxy.corp.example.com/some/path', 'it must not have a path'],
    ['https://u:p@proxy.corp.example.com', 'credentials in the URL are not allowed'],
    ['https://proxy:70000', 'it is not a valid URL'],
    ['', 'it is empty'],
  ];
  for (const [input, reason] of cases) {
    it(JSON.stringify(input), () => fails(() => parseTarget('db:22', input), U, text.invalidUrl('--pomerium-url', input, reason)));
  }
  it('defaults ports by scheme', () => {
    assert.equal(parseProxyUrl('https://p.test', 'x').origin, 'https://p.test:443');
    assert.equal(parseProxyUrl('http://p.test', 'x').origin, 'http://p.test:80');
  });
});

describe('parseListen', () => {
  it('accepts the documented forms', () => {
    assert.deepEqual(parseListen('-'), { kind: 'stdio' });
    assert.deepEqual(parseListen('127.0.0.1:0'), { kind: 'tcp', host: '127.0.0.1', port: 0, loopback: true });
    assert.deepEqual(parseListen(':2202'), { kind: 'tcp', host: '127.0.0.1', port: 2202, loopback: true });
    assert.deepEqual(parseListen('2202'), { kind: 'tcp', host: '127.0.0.1', port: 2202, loopback: true });
    assert.deepEqual(parseListen('localhost:2202'), { kind: 'tcp', host: 'localhost', port: 2202, loopback: true });
    assert.deepEqual(parseListen('[::1]:2202'), { kind: 'tcp', host: '::1', port: 2202, loopback: true });
    assert.deepEqual(parseListen('0.0.0.0:2202'), { kind: 'tcp', host: '0.0.0.0', port: 2202, loopback: false });
    assert.deepEqual(parseListen('[::]:0'), { kind: 'tcp', host: '::', port: 0, loopback: false });
  });
  const L = 'BURROW_INVALID_LISTEN';
  const cases: Array<[string, string]> = [
    ['', 'it is empty'],
    [':99999', 'the port "99999" is not a number from 0 to 65535'],
    [':http', 'the port "http" is not a number from 0 to 65535'],
    ['localhost', 'the port is missing (add ":PORT", for example ":22")'],
    ['--', 'the port is missing (add ":PORT", for example ":22")'],
  ];
  for (const [input, reason] of cases) {
    it(`rejects ${JSON.stringify(input)}`, () => fails(() => parseListen(input), L, text.invalidListen(input, reason)));
  }
});
