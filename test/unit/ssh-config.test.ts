import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { relative } from 'node:path';
import { describe, it } from 'node:test';
import { proxyCommandArg, sshConfigBlock, type SshConfigValues } from '../../src/cli/commands/ssh-config.js';
import type { Runtime } from '../../src/cli/runtime.js';
import { decodeCaCert } from '../../src/net/tls.js';
import { BurrowError } from '../../src/errors.js';
import { fixture, readFixture } from '../helpers/fixtures.js';
import { proxyCommand, proxyCommandArgv } from '../helpers/proxy-command.js';

const runtime = {
  env: {},
  version: '9.9.9',
  selfCommand: () => ['/usr/bin/node', '/opt/burrow dir/bin/burrow.js'],
} as unknown as Runtime;
const defaults = { loginTimeout: '300', serverAliveInterval: '30', stallTimeout: '60' };
const SELF = `/usr/bin/node '/opt/burrow dir/bin/burrow.js'`;

describe('proxyCommandArg', () => {
  it('leaves plain words alone and quotes the rest so /bin/sh gives them back unchanged', () => {
    assert.equal(proxyCommandArg('/usr/bin/node'), '/usr/bin/node');
    assert.equal(proxyCommandArg('https://p.test:8443'), 'https://p.test:8443');
    for (const value of ['/a b/c', "it's", 'a$b', 'semi;colon', 'back`tick', '"dq"']) {
      const quoted = proxyCommandArg(value);
      assert.equal(execFileSync('/bin/sh', ['-c', `printf %s ${quoted}`]).toString(), value, value);
    }
  });
  it('doubles % so ssh does not expand it', () => {
    assert.equal(proxyCommandArg('/x/100%'), "'/x/100%%'");
  });
});

describe('sshConfigBlock', () => {
  it('writes Host, a ProxyCommand with absolute paths, keepalives and User', () => {
    const block = sshConfigBlock('git.corp.test', { ...defaults, user: 'git', alternateCaPath: fixture('ca.pem'), pomeriumUrl: 'https://p.test' }, runtime);
    const lines = block.trim().split('\n');
    assert.ok(lines.includes('Host git.corp.test'));
    assert.ok(
      lines.includes(
        `  ProxyCommand /usr/bin/node '/opt/burrow dir/bin/burrow.js' tcp --listen - %h:%p --pomerium-url https://p.test:443 --alternate-ca-path ${fixture('ca.pem')}`,
      ),
      block,
    );
    assert.ok(lines.includes('  ServerAliveInterval 30'));
    assert.ok(lines.includes('  User git'));
  });
  it('takes a proxy URL with --host', () => {
    const block = sshConfigBlock('https://proxy.test:8443', { ...defaults, host: '*.corp.test' }, runtime);
    assert.match(block, /^Host \*\.corp\.test$/m);
    assert.match(block, /--pomerium-url https:\/\/proxy\.test:8443/);
  });
  it('passes on none of the defaults: the command ends at %h:%p', () => {
    const block = sshConfigBlock('git.corp.test', { ...defaults, connectTimeout: '30', transport: 'auto', pingInterval: '30', header: [], browser: true }, runtime);
    assert.equal(proxyCommand(block), `${SELF} tcp --listen - %h:%p`);
    // The table's defaults are filled in when the caller leaves them out, with the same result.
    assert.equal(proxyCommand(sshConfigBlock('git.corp.test', {}, runtime)), `${SELF} tcp --listen - %h:%p`);
  });

  it('passes on --transport (not auto), --header (each, in order), --connect-timeout and --ping-interval', () => {
    const block = sshConfigBlock(
      'git.corp.test',
      { ...defaults, transport: 'connect', header: ['X-Api-Key: k1', "X-Note: it's 100%"], connectTimeout: '5', pingInterval: '10' },
      runtime,
    );
    assert.equal(
      proxyCommand(block),
      `${SELF} tcp --listen - %h:%p --connect-timeout 5 --transport connect --ping-interval 10 --header 'X-Api-Key: k1' --header 'X-Note: it'\\''s 100%%'`,
    );
    // What burrow gets once ssh and /bin/sh are done with it.
    assert.deepEqual(proxyCommandArgv(proxyCommand(block)).slice(2), [
      'tcp', '--listen', '-', 'git.corp.test:22', '--connect-timeout', '5', '--transport', 'connect', '--ping-interval', '10',
      '--header', 'X-Api-Key: k1', '--header', "X-Note: it's 100%",
    ]);
  });

  it('takes a wss:// destination with --host: the ProxyCommand tunnels to that URL as is, not %h:%p', () => {
    const block = sshConfigBlock(
      'wss://gw.corp.test/ssh?team=a%2Fb',
      { ...defaults, host: 'gitlab *.gitlab', user: 'git', transport: 'websocket', header: ['PRIVATE-TOKEN: t0k'], connectTimeout: '7', pingInterval: '0.5' },
      runtime,
    );
    const lines = block.trim().split('\n');
    assert.ok(lines.includes('Host gitlab *.gitlab'), block);
    assert.ok(lines.includes('  User git'), block);
    assert.equal(
      proxyCommand(block),
      `${SELF} tcp --listen - 'wss://gw.corp.test/ssh?team=a%%2Fb' --connect-timeout 7 --transport websocket --ping-interval 0.5 --header 'PRIVATE-TOKEN: t0k'`,
    );
    assert.equal(proxyCommandArgv(proxyCommand(block))[5], 'wss://gw.corp.test/ssh?team=a%2Fb');
    // ws:// (loopback tests) too, and --transport auto needs no mention.
    assert.equal(proxyCommand(sshConfigBlock('ws://127.0.0.1:8080/', { host: 'h' }, runtime)), `${SELF} tcp --listen - ws://127.0.0.1:8080/`);
  });

  it('takes tcp+https://proxy/host:port (and host:port) with --host: one fixed destination for every matching host', () => {
    const block = sshConfigBlock(
      'tcp+https://proxy.corp.test:8443/db.internal:22',
      { ...defaults, host: 'db', header: ['X-Api-Key: k'], connectTimeout: '3', alternateCaPath: fixture('ca.pem') },
      runtime,
    );
    assert.match(block, /^Host db$/m);
    assert.equal(
      proxyCommand(block),
      `${SELF} tcp --listen - tcp+https://proxy.corp.test:8443/db.internal:22 --connect-timeout 3 --header 'X-Api-Key: k' --alternate-ca-path ${fixture('ca.pem')}`,
    );
    assert.equal(proxyCommand(sshConfigBlock('db.internal:22', { host: 'db' }, runtime)), `${SELF} tcp --listen - db.internal:22`);
    // --pomerium-url may go with it, as with tcp.
    assert.equal(
      proxyCommand(sshConfigBlock('tcp+https://proxy.corp.test/db.internal:22', { host: 'db', pomeriumUrl: 'https://p.test:9443' }, runtime)),
      `${SELF} tcp --listen - tcp+https://proxy.corp.test/db.internal:22 --pomerium-url https://p.test:9443`,
    );
  });

  it('passes on switches, negated flags (--no-browser, --no-proxy) and --proxy', () => {
    const on = sshConfigBlock('git.corp.test', { ...defaults, browser: false, proxy: false, disableTlsVerification: true, closeOnTokenExpiry: true }, runtime);
    assert.equal(proxyCommand(on), `${SELF} tcp --listen - %h:%p --close-on-token-expiry --no-proxy --no-browser --disable-tls-verification`);
    const proxied = sshConfigBlock('git.corp.test', { ...defaults, proxy: 'http://squid.corp.test:3128' }, runtime);
    assert.equal(proxyCommand(proxied), `${SELF} tcp --listen - %h:%p --proxy http://squid.corp.test:3128`);
  });

  it('makes path flags absolute (ssh runs the ProxyCommand elsewhere)', () => {
    const rel = (name: string) => relative(process.cwd(), fixture(name));
    assert.ok(!rel('ca.pem').startsWith('/'), rel('ca.pem'));
    const block = sshConfigBlock(
      'git.corp.test',
      { ...defaults, alternateCaPath: rel('ca.pem'), serviceAccountFile: rel('client.pem'), clientCert: rel('client.pem'), clientKey: rel('client-key.pem') },
      runtime,
    );
    assert.equal(
      proxyCommand(block),
      `${SELF} tcp --listen - %h:%p --service-account-file ${fixture('client.pem')} --alternate-ca-path ${fixture('ca.pem')} --client-cert ${fixture('client.pem')} --client-key ${fixture('client-key.pem')}`,
    );
  });

  it('writes a PEM given to --ca-cert as base64 of it: a ProxyCommand is one line', () => {
    const pem = readFixture('ca.pem');
    const block = sshConfigBlock('git.corp.test', { ...defaults, caCert: pem }, runtime);
    const argv = proxyCommandArgv(proxyCommand(block));
    assert.equal(argv.at(-2), '--ca-cert');
    assert.equal(decodeCaCert(argv.at(-1)!), pem.trim(), 'burrow tcp reads the same certificate back');
    assert.equal(block.trim().split('\n').length, 6, block);
  });

  const bad: Array<[string, SshConfigValues, string]> = [
    ['https://proxy.test', {}, 'with a proxy URL (https://proxy.test), say which ssh hosts go through it'],
    ['git.corp.test', { host: 'x' }, 'a host pattern argument and --host cannot be used together'],
    ['bad host$', {}, 'invalid ssh Host pattern "bad host$"'],
    ['git.corp.test', { user: 'a b' }, 'invalid --user "a b"'],
    ['git.corp.test', { alternateCaPath: '/nonexistent.pem' }, 'cannot read CA file "/nonexistent.pem": no such file'],
    ['git.corp.test', { pomeriumUrl: 'proxy.test' }, 'invalid --pomerium-url "proxy.test": it has no scheme (start it with https://)'],
    ['wss://gw.corp.test/ssh', {}, 'with a destination (wss://gw.corp.test/ssh), say which ssh hosts go to it'],
    ['tcp+https://proxy.corp.test/db:22', {}, 'with a destination (tcp+https://proxy.corp.test/db:22), say which ssh hosts go to it'],
    ['wss://gw.corp.test/ssh', { host: 'h', pomeriumUrl: 'https://p.test' }, 'a wss:// destination and --pomerium-url cannot be used together'],
    ['tcp+https://proxy.corp.test/db', { host: 'h' }, 'invalid destination "tcp+https://proxy.corp.test/db": the port is missing (add ":PORT", for example ":22")'],
    ['wss://gw.corp.test/ssh', { host: 'bad host$' }, 'invalid ssh Host pattern "bad host$"'],
    ['git.corp.test', { transport: 'websocket' }, '--transport websocket cannot be used with the destination "git.corp.test"'],
    ['wss://gw.corp.test/ssh', { host: 'h', transport: 'connect' }, '--transport connect cannot be used with the destination "wss://gw.corp.test/ssh"'],
    ['git.corp.test', { header: ['X-Ok: 1', 'no colon'] }, 'invalid --header "no"'],
    ['git.corp.test', { header: ['Host: x'] }, '--header cannot set Host: burrow sets it itself'],
    ['git.corp.test', { connectTimeout: '0' }, 'invalid --connect-timeout "0": expected a number of seconds from 0.1 to 3600'],
    ['git.corp.test', { pingInterval: 'often' }, 'invalid --ping-interval "often": expected a number of seconds from 0.05 to 3600'],
    ['git.corp.test', { loginTimeout: '0' }, 'invalid --login-timeout "0": expected a number of seconds from 1 to 86400'],
    ['git.corp.test', { proxy: 'socks5://s.test:1080' }, 'invalid forward proxy in --proxy: the scheme "socks5://" is not supported (use http:// or https://)'],
    ['git.corp.test', { serviceAccountFile: '/nonexistent/token' }, 'cannot read service account file "/nonexistent/token": no such file'],
    ['git.corp.test', { clientCert: fixture('client.pem') }, '--client-cert was given without --client-key'],
    ['git.corp.test', { browserCmd: 'open\n--evil' }, '--browser-cmd cannot be written into an ssh config: its value has a line break'],
  ];
  for (const [argument, values, message] of bad) {
    it(`rejects ${argument} ${JSON.stringify(values)}`, () => {
      assert.throws(
        () => sshConfigBlock(argument, { ...defaults, ...values }, runtime),
        (e: unknown) => e instanceof BurrowError && e.exitCode === 2 && e.message === message,
      );
    });
  }
});
