import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { proxyCommandArg, sshConfigBlock } from '../../src/cli/commands/ssh-config.js';
import type { Runtime } from '../../src/cli/runtime.js';
import { BurrowError } from '../../src/errors.js';
import { text } from '../../src/output/messages.js';
import { fixture } from '../helpers/fixtures.js';

const runtime = {
  env: {},
  version: '9.9.9',
  selfCommand: () => ['/usr/bin/node', '/opt/burrow dir/bin/burrow.js'],
} as unknown as Runtime;
const defaults = { loginTimeout: '300', serverAliveInterval: '30', stallTimeout: '60' };

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
  const bad: Array<[string, Record<string, string>, string, string]> = [
    ['https://proxy.test', {}, text.sshConfigNeedsHost('https://proxy.test'), 'BURROW_USAGE'],
    ['git.corp.test', { host: 'x' }, text.conflictingFlags('a host pattern argument', '--host'), 'BURROW_USAGE'],
    ['bad host$', {}, text.badHostPattern('bad host$'), 'BURROW_USAGE'],
    ['git.corp.test', { user: 'a b' }, text.badSshUser('a b'), 'BURROW_USAGE'],
    ['git.corp.test', { alternateCaPath: '/nonexistent.pem' }, text.fileUnreadable('CA file', '/nonexistent.pem', 'no such file'), 'BURROW_FILE_UNREADABLE'],
    ['git.corp.test', { pomeriumUrl: 'proxy.test' }, text.invalidUrl('--pomerium-url', 'proxy.test', 'it has no scheme (start it with https://)'), 'BURROW_INVALID_URL'],
  ];
  for (const [argument, values, message, code] of bad) {
    it(`rejects ${argument} ${JSON.stringify(values)}`, () => {
      assert.throws(
        () => sshConfigBlock(argument, { ...defaults, ...values }, runtime),
        (e: unknown) => e instanceof BurrowError && e.code === code && e.exitCode === 2 && e.message === message,
      );
    });
  }
});
